/// GPT-2's pre-tokenizer (also phi-2's and CodeGen's), hand-written rather than a regex engine:
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// Splits text into words; BPE then runs inside each word.
enum PreTokenizer {
    enum Class { case letter, number, space, other }

    static func classify(_ s: Unicode.Scalar) -> Class {
        if s.properties.isWhitespace { return .space }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Word boundaries as index ranges into `scalars`.
    static func split(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        let n = scalars.count
        let cls = scalars.map(classify)
        var out: [Range<Int>] = []
        var i = 0
        func run(from j: Int, while c: Class) -> Int {
            var k = j
            while k < n, cls[k] == c { k += 1 }
            return k
        }
        while i < n {
            let c = scalars[i]
            // contractions: 's 't 'm 'd, then 're 've 'll (case-sensitive, as in GPT-2)
            if c == "'", i + 1 < n {
                let c1 = scalars[i + 1]
                if c1 == "s" || c1 == "t" || c1 == "m" || c1 == "d" {
                    out.append(i ..< i + 2); i += 2; continue
                }
                if i + 2 < n {
                    let c2 = scalars[i + 2]
                    if (c1 == "r" && c2 == "e") || (c1 == "v" && c2 == "e") || (c1 == "l" && c2 == "l") {
                        out.append(i ..< i + 3); i += 3; continue
                    }
                }
            }
            // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
            let j = (c == " " && i + 1 < n && cls[i + 1] != .space) ? i + 1 : i
            if cls[j] != .space {
                let k = run(from: j, while: cls[j])
                out.append(i ..< k)
                i = k
                continue
            }
            // '\s+(?!\S)' leaves the last space of a run before a non-space to that word; else '\s+'
            let k = run(from: i, while: .space)
            if k < n, k - i > 1 {
                out.append(i ..< k - 1)
                i = k - 1
            } else {
                out.append(i ..< k)
                i = k
            }
        }
        return out
    }
}
