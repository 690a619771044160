import BonsaiFormats
import Foundation

/// GPT-2 / CodeGen byte-level BPE, as PHI-2 uses it.
///
/// Encoding: split the text on added tokens (the whitespace-run tokens always, `<|endoftext|>` and other
/// control tokens when `parseSpecial`), pre-tokenize each remaining piece with GPT-2's rules, then apply
/// the BPE merges inside each word. This is what both transformers and llama.cpp do for phi-2.
public final class Tokenizer: @unchecked Sendable {
    public enum TokenKind: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// Token strings in byte-level form (added tokens: their literal text).
    public let tokens: [String]
    public let kinds: [TokenKind]
    public let eosID: Int
    public let bosID: Int
    /// The BPE merges in rank order, as loaded (written back into GGUF files).
    public let mergeList: [(String, String)]
    private let ids: [String: Int32]
    private let merges: [UInt64: (rank: Int32, merged: Int32)]
    /// Added tokens matched in raw text, longest first.
    private let addedTokens: [(text: [Unicode.Scalar], id: Int32, special: Bool)]
    private var cache: [String: [Int32]] = [:]
    private let cacheLock = NSLock()

    public init(tokens: [String], kinds: [TokenKind], merges: [(String, String)], eosID: Int, bosID: Int) throws {
        precondition(tokens.count == kinds.count)
        self.tokens = tokens
        self.kinds = kinds
        self.eosID = eosID
        self.bosID = bosID
        mergeList = merges
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where kinds[i] != .unused && ids[t] == nil { ids[t] = Int32(i) }
        self.ids = ids
        var table: [UInt64: (rank: Int32, merged: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = ids[a], let ib = ids[b], let im = ids[a + b] else { continue }
            let key = UInt64(UInt32(bitPattern: ia)) << 32 | UInt64(UInt32(bitPattern: ib))
            if table[key] == nil { table[key] = (Int32(rank), im) }
        }
        self.merges = table
        var added: [(text: [Unicode.Scalar], id: Int32, special: Bool)] = []
        for (i, k) in kinds.enumerated() where k == .control || k == .userDefined {
            let scalars = Array(tokens[i].unicodeScalars)
            if !scalars.isEmpty { added.append((scalars, Int32(i), k == .control)) }
        }
        addedTokens = added.sorted { $0.text.count > $1.text.count }
    }

    public var count: Int { tokens.count }

    /// Whether `id` names a real token that text generation may produce (not padding, not out of range).
    public func isSampleable(_ id: Int) -> Bool {
        id >= 0 && id < kinds.count && kinds[id] != .unused
    }

    public func id(of token: String) -> Int? { ids[token].map(Int.init) }

    // ------------------------------------------------------------------------------------ encode

    /// Token ids of `text`; no BOS is added (PHI-2 uses none). With `parseSpecial`, control-token text
    /// such as `<|endoftext|>` becomes that token; without it, it is tokenized as plain text.
    public func encode(_ text: String, parseSpecial: Bool = true) -> [Int] {
        let scalars = Array(text.unicodeScalars)
        var out: [Int] = []
        var start = 0, i = 0
        while i < scalars.count {
            if let (len, id) = matchAdded(scalars, at: i, parseSpecial: parseSpecial) {
                if start < i { encodePlain(scalars[start ..< i], into: &out) }
                out.append(Int(id))
                i += len
                start = i
            } else {
                i += 1
            }
        }
        if start < scalars.count { encodePlain(scalars[start...], into: &out) }
        return out
    }

    private func matchAdded(_ s: [Unicode.Scalar], at i: Int, parseSpecial: Bool) -> (Int, Int32)? {
        let first = s[i]
        for t in addedTokens where t.text[0] == first && (parseSpecial || !t.special) {
            let n = t.text.count
            if i + n <= s.count, s[i ..< i + n].elementsEqual(t.text) { return (n, t.id) }
        }
        return nil
    }

    private func encodePlain(_ piece: ArraySlice<Unicode.Scalar>, into out: inout [Int]) {
        let scalars = Array(piece)
        for r in PreTokenizer.split(scalars) {
            var word = String.UnicodeScalarView()
            word.append(contentsOf: scalars[r])
            for id in bpe(String(word)) { out.append(Int(id)) }
        }
    }

    /// BPE inside one word: start from one token per byte, merge the lowest-ranked pair until none applies.
    private func bpe(_ word: String) -> [Int32] {
        cacheLock.lock()
        if let hit = cache[word] { cacheLock.unlock(); return hit }
        cacheLock.unlock()
        var parts: [Int32] = []
        for b in word.utf8 {
            // every byte's character is a token of a byte-level vocabulary
            parts.append(ids[String(ByteLevel.byteToScalar[Int(b)])] ?? Int32(eosID))
        }
        while parts.count > 1 {
            var best: (rank: Int32, at: Int, merged: Int32)? = nil
            for j in 0 ..< parts.count - 1 {
                let key = UInt64(UInt32(bitPattern: parts[j])) << 32 | UInt64(UInt32(bitPattern: parts[j + 1]))
                if let m = merges[key], best == nil || m.rank < best!.rank { best = (m.rank, j, m.merged) }
            }
            guard let b = best else { break }
            // merge every occurrence of this pair, left to right
            let left = parts[b.at], right = parts[b.at + 1]
            var merged: [Int32] = []
            merged.reserveCapacity(parts.count)
            var j = 0
            while j < parts.count {
                if j + 1 < parts.count, parts[j] == left, parts[j + 1] == right {
                    merged.append(b.merged)
                    j += 2
                } else {
                    merged.append(parts[j])
                    j += 1
                }
            }
            parts = merged
        }
        cacheLock.lock()
        if cache.count > 100_000 { cache.removeAll(keepingCapacity: true) }
        cache[word] = parts
        cacheLock.unlock()
        return parts
    }

    // ------------------------------------------------------------------------------------ decode

    /// The raw bytes token `id` stands for. Control tokens give their text only when `special`.
    public func bytes(of id: Int, special: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        appendBytes(of: id, to: &out, special: special)
        return out
    }

    /// `bytes(of:)` appended to `out`: no allocation once `out` has the room (the streaming decoder's
    /// buffer, once per generated token).
    public func appendBytes(of id: Int, to out: inout [UInt8], special: Bool = false) {
        guard id >= 0, id < tokens.count else { return }
        switch kinds[id] {
        case .normal, .byte, .unknown:
            if !ByteLevel.decode(tokens[id], appendingTo: &out) { out += tokens[id].utf8 }
        case .userDefined:
            out += tokens[id].utf8
        case .control:
            if special { out += tokens[id].utf8 }
        case .unused:
            return
        }
    }

    /// Text of a whole sequence (invalid UTF-8 becomes U+FFFD).
    public func decode(_ ids: [Int], special: Bool = false) -> String {
        var out: [UInt8] = []
        for id in ids { appendBytes(of: id, to: &out, special: special) }
        return String(decoding: out, as: UTF8.self)
    }
}
