import BonsaiFormats
import Foundation

public enum TokenizerError: OneLineError {
    case missing(path: String, what: String)
    case unsupported(path: String, what: String)

    public var message: String {
        switch self {
        case let .missing(path, what): return "\(path): \(what)"
        case let .unsupported(path, what): return "\(path): unsupported tokenizer: \(what)"
        }
    }
}

extension Tokenizer {
    /// More token ids than any BPE vocabulary has (PHI-2's has 51200 rows; the largest in use, ~260k).
    static let maxTokens = 1 << 22

    /// From GGUF metadata (`tokenizer.ggml.*`). A phi2 file without `tokenizer.ggml.pre` uses the
    /// GPT-2 rules, which is what phi-2 uses.
    public convenience init(gguf: GGUFFile) throws {
        guard let model = gguf["tokenizer.ggml.model"]?.string else {
            throw TokenizerError.missing(path: gguf.path, what: "no tokenizer.ggml.model in the metadata")
        }
        guard model == "gpt2" else {
            throw TokenizerError.unsupported(path: gguf.path, what: "tokenizer.ggml.model = \(model) (only gpt2 BPE)")
        }
        if let pre = gguf["tokenizer.ggml.pre"]?.string, !["phi-2", "gpt-2", "gpt2", "default", "codegen"].contains(pre) {
            throw TokenizerError.unsupported(path: gguf.path, what: "tokenizer.ggml.pre = \(pre) (phi-2 / gpt-2 rules only)")
        }
        guard let tokens = gguf["tokenizer.ggml.tokens"]?.strings, !tokens.isEmpty else {
            throw TokenizerError.missing(path: gguf.path, what: "no tokenizer.ggml.tokens")
        }
        let types = gguf["tokenizer.ggml.token_type"]?.ints ?? []
        let kinds = tokens.indices.map { i in
            i < types.count ? TokenKind(rawValue: types[i]) ?? .normal : .normal
        }
        let merges = (gguf["tokenizer.ggml.merges"]?.strings ?? []).compactMap(Tokenizer.splitMerge)
        let eos = gguf["tokenizer.ggml.eos_token_id"]?.int ?? 50256
        let bos = gguf["tokenizer.ggml.bos_token_id"]?.int ?? eos
        for (key, id) in [("eos", eos), ("bos", bos)] where !tokens.indices.contains(id) {
            throw TokenizerError.unsupported(path: gguf.path, what: "tokenizer.ggml.\(key)_token_id \(id) is not one of the \(tokens.count) tokens")
        }
        try self.init(tokens: tokens, kinds: kinds, merges: merges, eosID: eos, bosID: bos)
    }

    /// From a Hugging Face folder: tokenizer.json, or vocab.json + merges.txt (+ added_tokens.json).
    public convenience init(hfRepo path: String) throws {
        let fm = FileManager.default
        var vocab: [String: Int] = [:]
        var merges: [(String, String)] = []
        var added: [(String, Int, Bool)] = []
        if fm.fileExists(atPath: path + "/tokenizer.json") {
            let json = try HFRepo.readJSONObject(path + "/tokenizer.json")
            guard let model = json["model"] as? [String: Any], (model["type"] as? String ?? "BPE") == "BPE",
                  let v = model["vocab"] as? [String: Any] else {
                throw TokenizerError.unsupported(path: path + "/tokenizer.json", what: "model is not BPE")
            }
            for (k, id) in v { if let id = (id as? NSNumber)?.intValue { vocab[k] = id } }
            for m in model["merges"] as? [Any] ?? [] {
                if let s = m as? String, let pair = Tokenizer.splitMerge(s) { merges.append(pair) }
                else if let a = m as? [String], a.count == 2 { merges.append((a[0], a[1])) }
            }
            for t in json["added_tokens"] as? [[String: Any]] ?? [] {
                if let c = t["content"] as? String, let id = (t["id"] as? NSNumber)?.intValue {
                    added.append((c, id, t["special"] as? Bool ?? false))
                }
            }
        } else if fm.fileExists(atPath: path + "/vocab.json"), fm.fileExists(atPath: path + "/merges.txt") {
            for (k, id) in try HFRepo.readJSONObject(path + "/vocab.json") {
                if let id = (id as? NSNumber)?.intValue { vocab[k] = id }
            }
            guard let text = try? String(contentsOfFile: path + "/merges.txt", encoding: .utf8) else {
                throw TokenizerError.missing(path: path + "/merges.txt", what: "cannot read")
            }
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) where !line.hasPrefix("#version") {
                if let pair = Tokenizer.splitMerge(String(line)) { merges.append(pair) }
            }
            var specials: Set<String> = ["<|endoftext|>"]
            if let map = try? HFRepo.readJSONObject(path + "/special_tokens_map.json") {
                for v in map.values {
                    if let s = v as? String { specials.insert(s) }
                    if let d = v as? [String: Any], let s = d["content"] as? String { specials.insert(s) }
                }
            }
            if let a = try? HFRepo.readJSONObject(path + "/added_tokens.json") {
                for (c, id) in a { if let id = (id as? NSNumber)?.intValue { added.append((c, id, specials.contains(c))) } }
            }
        } else {
            throw TokenizerError.missing(path: path, what: "no tokenizer.json or vocab.json + merges.txt")
        }
        // The table is as long as the largest id: a damaged file's 3e9 (or Int.max) must not allocate it.
        let largest = max(vocab.values.max() ?? -1, added.map(\.1).max() ?? -1)
        guard largest < Tokenizer.maxTokens else {
            throw TokenizerError.unsupported(path: path, what: "token id \(largest) (ids above \(Tokenizer.maxTokens - 1) are not plausible)")
        }
        let size = largest + 1
        var tokens = [String](repeating: "", count: size)
        var kinds = [TokenKind](repeating: .unused, count: size)
        for (t, id) in vocab where id >= 0 { tokens[id] = t; kinds[id] = .normal }
        for (t, id, special) in added where id >= 0 { tokens[id] = t; kinds[id] = special ? .control : .userDefined }
        let eos = vocab["<|endoftext|>"] ?? added.first { $0.0 == "<|endoftext|>" }?.1 ?? 50256
        try self.init(tokens: tokens, kinds: kinds, merges: merges, eosID: eos, bosID: eos)
    }

    static func splitMerge(_ s: String) -> (String, String)? {
        guard let sp = s.firstIndex(of: " ") else { return nil }
        return (String(s[..<sp]), String(s[s.index(after: sp)...]))
    }
}
