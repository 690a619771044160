/// Turns tokens into text one at a time without ever emitting a broken UTF-8 sequence: bytes of a
/// character split across tokens (CJK, emoji) are held back until the character is complete.
public struct StreamingDecoder {
    private let tokenizer: Tokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer) { self.tokenizer = tokenizer }

    /// The text that became complete with this token (possibly empty).
    public mutating func append(_ id: Int) -> String {
        tokenizer.appendBytes(of: id, to: &pending)
        let cut = StreamingDecoder.completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Whatever is still held back (an incomplete sequence at the end becomes U+FFFD).
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return pending.isEmpty ? "" : String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside an incomplete (but so far valid) sequence.
    static func completePrefixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        // look back at most 3 bytes for the start of the last sequence
        var i = n - 1
        while i >= 0, i >= n - 4 {
            let c = b[i]
            if c & 0xC0 != 0x80 {   // a lead byte (or ASCII)
                let need = c < 0x80 ? 1 : c >> 5 == 0b110 ? 2 : c >> 4 == 0b1110 ? 3 : c >> 3 == 0b11110 ? 4 : 1
                return n - i >= need ? n : i
            }
            i -= 1
        }
        return n   // only continuation bytes: invalid anyway, let the decoder replace them
    }
}
