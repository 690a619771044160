import CBonsai

/// A ggml tensor type (the ids written in GGUF files), with the block geometry from the C table.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int

    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let f32 = TensorType(rawValue: 0)
    public static let f16 = TensorType(rawValue: 1)
    public static let q4_0 = TensorType(rawValue: 2)
    public static let q4_1 = TensorType(rawValue: 3)
    public static let q5_0 = TensorType(rawValue: 6)
    public static let q5_1 = TensorType(rawValue: 7)
    public static let q8_0 = TensorType(rawValue: 8)
    public static let q2_K = TensorType(rawValue: 10)
    public static let q3_K = TensorType(rawValue: 11)
    public static let q4_K = TensorType(rawValue: 12)
    public static let q5_K = TensorType(rawValue: 13)
    public static let q6_K = TensorType(rawValue: 14)
    public static let iq4_nl = TensorType(rawValue: 20)
    public static let iq4_xs = TensorType(rawValue: 23)
    public static let bf16 = TensorType(rawValue: 30)

    /// nil for ids C does not know, including ids past Int32 (a damaged file's type field can hold any u32).
    private var traits: bonsai_type_traits? { Int32(exactly: rawValue).flatMap { bonsai_type_info($0)?.pointee } }

    /// Known to ggml and to us (its geometry is known even if we cannot run it).
    public var isKnown: Bool { traits != nil }
    /// Weights of this type can be dequantized and run.
    public var canRun: Bool { traits?.can_dequantize ?? false }
    public var blockSize: Int { Int(traits?.block_size ?? 0) }
    public var typeSize: Int { Int(traits?.type_size ?? 0) }
    public var isQuantized: Bool { blockSize > 1 }
    /// Byte offsets of the f16 scale fields (d, and m / dmin where the type has one) inside one block.
    public var f16ScaleOffsets: [Int] {
        [TensorType.q4_0: [0], .q4_1: [0, 2], .q5_0: [0], .q5_1: [0, 2], .q8_0: [0], .q2_K: [80, 82],
         .q3_K: [108], .q4_K: [0, 2], .q5_K: [0, 2], .q6_K: [208], .iq4_nl: [0], .iq4_xs: [0]][self] ?? []
    }

    /// Sets every block's f16 scale fields in `bytes` (whole blocks) to `scale`, so that random bytes
    /// decode to finite values of a chosen size (for benchmarks and kernel tests).
    public func setBlockScales(_ bytes: inout [UInt8], to scale: Float) {
        let h = bonsai_f32_to_f16(scale)
        for block in stride(from: 0, to: bytes.count, by: typeSize) {
            for o in f16ScaleOffsets {
                bytes[block + o] = UInt8(h & 0xff)
                bytes[block + o + 1] = UInt8(h >> 8)
            }
        }
    }

    /// We can write weights of this type (a reference quantizer exists).
    public var canQuantize: Bool {
        guard canRun else { return false }
        var x = [Float](repeating: 0, count: max(blockSize, 1))
        var out = [UInt8](repeating: 0, count: max(typeSize, 1))
        return bonsai_quantize_row(Int32(rawValue), &x, &out, Int64(x.count))
    }

    /// ggml's name ("q4_0", "q6_K", "f16"): from the C table for the types we know, from this list for
    /// those we cannot run (the other IQ types...), else "id N".
    public var description: String {
        if let t = traits { return String(cString: t.name) }
        let others: [Int: String] = [16: "iq2_xxs", 17: "iq2_xs", 18: "iq3_xxs", 19: "iq1_s", 21: "iq3_s", 22: "iq2_s",
                                     29: "iq1_m", 34: "tq1_0", 35: "tq2_0", 39: "mxfp4"]
        return others[rawValue] ?? "id \(rawValue)"
    }

    /// Bytes of `elements` elements, or nil when the count is not a whole number of blocks.
    public func byteCount(elements: Int) -> Int? {
        guard blockSize > 0, elements % blockSize == 0 else { return nil }
        let (n, overflow) = (elements / blockSize).multipliedReportingOverflow(by: typeSize)
        return overflow ? nil : n
    }

    /// Parses a user's spelling: "q4_0", "Q4_K", "f16"...
    public init?(name: String) {
        let lower = name.lowercased()
        for id in 0 ..< Int(BONSAI_TYPE_COUNT.rawValue) {
            if let t = bonsai_type_info(Int32(id)), String(cString: t.pointee.name).lowercased() == lower {
                self.init(rawValue: id)
                return
            }
        }
        return nil
    }
}
