import BonsaiTokenizer
import Foundation

// Training data: JSONL, one example per line, in any of four shapes, rendered in PHI-2's QA format.
//
//   {"instruction", "input"?, "reasoning"?, "response" | "output"}   reasoning SFT
//       Instruct: {instruction}\n{input}\nOutput: {reasoning}\n\n{response}<|endoftext|>
//   {"prompt", "completion"}
//       Instruct: {prompt}\nOutput: {completion}<|endoftext|>
//   {"messages": [{"role": "system" | "user" | "assistant", "content"}, …]}
//       {system}\nInstruct: {user}\nOutput: {assistant}\nInstruct: {user}\nOutput: {assistant}<|endoftext|>
//   {"text"}
//       {text}<|endoftext|>
//
// The answer — everything after "Output:" (reasoning and response), every assistant turn, and the final
// <|endoftext|> — is what the loss sees; the prompt is context only (unless --no-mask-prompt). A {"text"}
// line is all answer.

/// One rendered example: text pieces, each either trained on (answer) or context (prompt).
public struct TrainingExample: Sendable, Equatable {
    public var pieces: [(text: String, trained: Bool)]

    public static func == (a: Self, b: Self) -> Bool {
        a.pieces.map(\.text) == b.pieces.map(\.text) && a.pieces.map(\.trained) == b.pieces.map(\.trained)
    }

    /// The rendered text with the answer part in [[ ]] (for --show-example).
    public var annotated: String {
        pieces.map { $0.trained ? "[[" + $0.text + "]]" : $0.text }.joined() + "[[<|endoftext|>]]"
    }

    /// Parses one JSONL line (already decoded to an object). Throws a reason, without file and line.
    public init(json o: [String: Any]) throws {
        func string(_ key: String) throws -> String? {
            guard let v = o[key], !(v is NSNull) else { return nil }
            guard let s = v as? String else { throw Reason("\"\(key)\" must be a string") }
            return s
        }
        if let instruction = try string("instruction") {
            guard let response = try string("response") ?? string("output") else {
                throw Reason("an \"instruction\" line needs a \"response\" (or \"output\")")
            }
            let input = try string("input").flatMap { $0.isEmpty ? nil : "\n" + $0 } ?? ""
            let reasoning = try string("reasoning").flatMap { $0.isEmpty ? nil : $0 + "\n\n" } ?? ""
            pieces = [("Instruct: \(instruction)\(input)\nOutput:", false), (" " + reasoning + response, true)]
        } else if let prompt = try string("prompt") {
            guard let completion = try string("completion") else { throw Reason("a \"prompt\" line needs a \"completion\"") }
            pieces = [("Instruct: \(prompt)\nOutput:", false), (" " + completion, true)]
        } else if let messages = o["messages"] {
            guard let list = messages as? [Any], !list.isEmpty else { throw Reason("\"messages\" must be a non-empty array") }
            pieces = []
            var sawAssistant = false, afterUser = false
            for (i, m) in list.enumerated() {
                guard let m = m as? [String: Any], let role = m["role"] as? String, let content = m["content"] as? String else {
                    throw Reason("messages[\(i)] needs string \"role\" and \"content\"")
                }
                switch role {
                case "system":
                    guard pieces.isEmpty else { throw Reason("messages[\(i)]: a system message must come first") }
                    pieces.append((content + "\n", false))
                case "user":
                    let lead = pieces.isEmpty || !sawAssistant && !afterUser ? "" : "\n"
                    pieces.append((lead + "Instruct: \(content)\nOutput:", false))
                    afterUser = true
                case "assistant":
                    guard afterUser else { throw Reason("messages[\(i)]: an assistant message must follow a user message") }
                    pieces.append((" " + content, true))
                    sawAssistant = true
                    afterUser = false
                default:
                    throw Reason("messages[\(i)]: role \"\(role)\" is not system, user or assistant")
                }
            }
            guard sawAssistant else { throw Reason("\"messages\" has no assistant message to learn from") }
        } else if let text = try string("text") {
            guard !text.isEmpty else { throw Reason("\"text\" is empty") }
            pieces = [(text, true)]
        } else {
            let keys = o.keys.sorted().joined(separator: ", ")
            throw Reason("no known fields (found: \(keys.isEmpty ? "none" : keys)); expected instruction/response, prompt/completion, messages or text")
        }
    }

    public init(pieces: [(text: String, trained: Bool)]) { self.pieces = pieces }

    struct Reason: Error { let text: String; init(_ t: String) { text = t } }
}

/// Token ids of one example and, per token, whether the loss predicts it.
public struct TokenizedExample: Sendable, Equatable {
    public var tokens: [Int]
    public var trained: [Bool]
    public var truncated: Bool

    /// targets[t] = the token position t predicts (tokens[t + 1]) where that token is trained, else nil.
    public var targets: [Int?] {
        (0 ..< tokens.count).map { t in t + 1 < tokens.count && trained[t + 1] ? tokens[t + 1] : nil }
    }
    public var targetCount: Int { trained.dropFirst().filter { $0 }.count }

    /// Each piece is tokenized on its own (so the prompt/answer boundary falls between tokens), special
    /// token strings in the data are plain text, and <|endoftext|> ends the example as a token.
    public init(_ e: TrainingExample, tokenizer: Tokenizer, maxTokens: Int, maskPrompt: Bool = true) {
        tokens = []
        trained = []
        for p in e.pieces {
            let ids = tokenizer.encode(p.text, parseSpecial: false)
            tokens += ids
            trained += Array(repeating: p.trained || !maskPrompt, count: ids.count)
        }
        tokens.append(tokenizer.eosID)
        trained.append(true)
        truncated = tokens.count > maxTokens
        if truncated {
            tokens.removeLast(tokens.count - maxTokens)
            trained.removeLast(trained.count - maxTokens)
        }
    }
}

/// A JSONL file read into examples, with counts of what was skipped or cut.
public struct Dataset: Sendable {
    public let path: String
    public let examples: [TokenizedExample]
    /// Lines that failed to parse (only with skipBad; otherwise the first one throws).
    public let badLines: Int
    /// Examples longer than maxTokens, cut at the end.
    public let truncated: Int
    /// Examples with nothing to learn after truncation (the answer lay beyond maxTokens), left out.
    public let dropped: Int

    public var targetTokens: Int { examples.reduce(0) { $0 + $1.targetCount } }

    public init(path: String, tokenizer: Tokenizer, maxTokens: Int, maskPrompt: Bool = true, skipBad: Bool = false) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainError.noData("\(path): cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw TrainError.data(file: path, line: 1, reason: "not UTF-8 text") }
        var examples: [TokenizedExample] = [], bad = 0, truncated = 0, dropped = 0
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            do {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) else {
                    throw TrainingExample.Reason("not valid JSON")
                }
                guard let o = obj as? [String: Any] else { throw TrainingExample.Reason("expected a JSON object") }
                let t = TokenizedExample(try TrainingExample(json: o), tokenizer: tokenizer, maxTokens: maxTokens, maskPrompt: maskPrompt)
                if t.truncated { truncated += 1 }
                if t.targetCount == 0 { dropped += 1; continue }
                examples.append(t)
            } catch let r as TrainingExample.Reason {
                if !skipBad { throw TrainError.data(file: path, line: i + 1, reason: r.text + " (--skip-bad skips such lines)") }
                bad += 1
            }
        }
        guard !examples.isEmpty else {
            throw TrainError.noData("\(path): no usable examples" + (dropped > 0 ? " (\(dropped) had no answer tokens within --max-seq-len \(maxTokens))" : ""))
        }
        self.examples = examples
        badLines = bad
        self.truncated = truncated
        self.dropped = dropped
    }

    /// The dataset folder's train.jsonl and, if present, valid.jsonl (or a single .jsonl file).
    public static func files(in path: String) throws -> (train: String, valid: String?) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TrainError.noData("\(path): no such data folder or file")
        }
        if !isDir.boolValue { return (path, nil) }
        let train = path + "/train.jsonl", valid = path + "/valid.jsonl"
        guard FileManager.default.fileExists(atPath: train) else { throw TrainError.noData("\(path): has no train.jsonl") }
        return (train, FileManager.default.fileExists(atPath: valid) ? valid : nil)
    }
}
