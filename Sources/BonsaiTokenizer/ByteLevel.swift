/// GPT-2's reversible byte ↔ printable-character map: every byte gets a visible Unicode scalar
/// (printable Latin-1 bytes map to themselves, the rest to U+0100 onwards), so BPE tokens are strings.
enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var printable = Array(33 ... 126) + Array(161 ... 172) + Array(174 ... 255)
        var scalars = printable
        var extra = 0
        for b in 0 ... 255 where !printable.contains(b) {
            printable.append(b)
            scalars.append(256 + extra)
            extra += 1
        }
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        for (b, s) in zip(printable, scalars) { table[b] = Unicode.Scalar(UInt32(s))! }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var m: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { m[s.value] = UInt8(b) }
        return m
    }()

    /// The byte-level string of raw bytes.
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(byteToScalar[Int(b)]) }
        return String(s)
    }

    /// Appends the raw bytes of a byte-level token string to `out`; false (and `out` as it was) if the
    /// string holds a character outside the map. Allocates nothing once `out` has the room.
    static func decode(_ token: String, appendingTo out: inout [UInt8]) -> Bool {
        let start = out.count
        for s in token.unicodeScalars {
            guard let b = scalarToByte[s.value] else {
                out.removeSubrange(start...)
                return false
            }
            out.append(b)
        }
        return true
    }
}

/// The byte ↔ character map, for code that writes vocabularies.
public enum ByteLevelMap {
    public static func scalar(_ b: UInt8) -> Unicode.Scalar { ByteLevel.byteToScalar[Int(b)] }
}
