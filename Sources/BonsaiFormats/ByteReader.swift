/// A cursor over untrusted bytes. Every read is bounds-checked and throws `FormatError.malformed`
/// naming the file and what was being read, so a truncated or hostile file can never crash us. What was
/// being read is an autoclosure: it is made into text only for the error (reading a vocabulary once built
/// 100,000 such labels).
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset: Int = 0

    init(_ bytes: UnsafeRawBufferPointer, path: String, offset: Int = 0) {
        self.bytes = bytes
        self.path = path
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    func fail(_ what: String) -> FormatError {
        .malformed(path: path, reason: "\(what) at byte \(offset)")
    }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        guard n >= 0, n <= remaining else {
            throw FormatError.malformed(path: path, reason: "truncated: \(what()) needs \(n) bytes at byte \(offset), \(remaining) left")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func readF32(_ what: @autoclosure () -> String) throws -> Float { Float(bitPattern: try read(UInt32.self, what())) }
    mutating func readF64(_ what: @autoclosure () -> String) throws -> Double { Double(bitPattern: try read(UInt64.self, what())) }

    /// A count stored as u64 that must fit what is left of the file at `minBytesEach` bytes per item.
    mutating func readCount(_ what: @autoclosure () -> String, minBytesEach: Int) throws -> Int {
        let n = try read(UInt64.self, what())
        guard n <= UInt64(Int.max), minBytesEach == 0 || Int(n) <= remaining / minBytesEach else {
            throw fail("\(what()) = \(n) is more than the file can hold")
        }
        return Int(n)
    }

    mutating func readString(_ what: @autoclosure () -> String) throws -> String {
        let n = try readCount("\(what()) length", minBytesEach: 1)
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + n]), as: UTF8.self)
        offset += n
        return s
    }
}
