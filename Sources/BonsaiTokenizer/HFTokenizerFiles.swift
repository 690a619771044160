import BonsaiFormats
import Foundation

extension Tokenizer {
    /// Writes the tokenizer as a Hugging Face folder holds a CodeGen (PHI-2) tokenizer: vocab.json and
    /// merges.txt for the byte-level BPE, added_tokens.json for the user-defined tokens (PHI-2's whitespace
    /// runs), special_tokens_map.json and tokenizer_config.json. `Tokenizer(hfRepo:)` and transformers'
    /// AutoTokenizer read them back to the same ids.
    public func writeHFFiles(to dir: String, maxLength: Int) throws {
        var vocab: [String: Int] = [:], added: [String: Int] = [:]
        var decoder: [String: Any] = [:]
        for (id, (t, k)) in zip(tokens, kinds).enumerated() {
            switch k {
            case .unused: continue
            case .userDefined:
                added[t] = id
                decoder["\(id)"] = ["content": t, "lstrip": false, "normalized": true, "rstrip": false, "single_word": false, "special": false]
            case .control:
                vocab[t] = id
                decoder["\(id)"] = ["content": t, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true]
            default:
                vocab[t] = id
            }
        }
        let eos = tokens[eosID], bos = tokens[bosID]
        func json(_ o: Any, _ name: String) throws {
            let data = try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
            let out = try AtomicFileWriter(path: dir + "/" + name)
            try out.write([UInt8](data) + [0x0a])
            try out.commit()
        }
        try json(vocab, "vocab.json")
        try json(added, "added_tokens.json")
        try json(["bos_token": bos, "eos_token": eos, "unk_token": eos], "special_tokens_map.json")
        try json(["tokenizer_class": "CodeGenTokenizer", "add_prefix_space": false, "bos_token": bos, "eos_token": eos,
                  "unk_token": eos, "model_max_length": maxLength, "clean_up_tokenization_spaces": false,
                  "added_tokens_decoder": decoder] as [String: Any], "tokenizer_config.json")
        let merges = "#version: 0.2\n" + mergeList.map { $0.0 + " " + $0.1 + "\n" }.joined()
        let out = try AtomicFileWriter(path: dir + "/merges.txt")
        try out.write([UInt8](merges.utf8))
        try out.commit()
    }
}
