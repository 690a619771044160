import Bonsai
import Foundation

/// Every setting of a training run. The CLI's flags, a --config file (YAML or JSON, same keys in
/// snake_case or kebab-case) and these defaults combine as: flag > config file > default.
public struct TrainConfig: Equatable, Sendable {
    public var model: String? = nil
    public var data: String? = nil
    public var adapterPath = "adapters"
    public var rank = 8
    public var alpha: Float = 16
    public var dropout: Float = 0
    public var useRSLoRA = false
    public var targets: [LoRATarget] = LoRATarget.allCases
    /// Adapt only the last N blocks (nil: all).
    public var numLayers: Int? = nil
    public var learningRate: Float = 1e-4
    public var lrSchedule = LRSchedule.Kind.constant
    public var warmup = 0
    public var weightDecay: Float = 0
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var batchSize = 4
    public var gradAccum = 1
    public var maxSeqLen = 512
    /// Optimizer steps; when neither iters nor epochs is set, one epoch.
    public var iters: Int? = nil
    public var epochs: Double? = nil
    public var seed: UInt64 = 0
    /// Validation every N steps (0: only at the end).
    public var stepsPerEval = 100
    /// Validation examples used per evaluation (nil: all of valid.jsonl).
    public var valExamples: Int? = nil
    /// A checkpoint every N steps (0: only at the end and on Ctrl-C).
    public var saveEvery = 100
    public var gradCheckpoint = false
    public var threads: Int? = nil
    public var maskPrompt = true
    public var skipBad = false

    public init() {}

    /// The keys a config file may hold (snake_case), in --help order.
    public static let keys = ["model", "data", "adapter_path", "rank", "alpha", "dropout", "use_rslora", "targets",
                              "num_layers", "learning_rate", "lr_schedule", "warmup", "weight_decay", "beta1", "beta2",
                              "eps", "batch_size", "grad_accum", "max_seq_len", "iters", "epochs", "seed",
                              "steps_per_eval", "val_examples", "save_every", "grad_checkpoint", "threads",
                              "mask_prompt", "skip_bad"]

    /// Sets one key from a config file value (a string, number, bool or list as the parser produced it).
    public mutating func set(_ rawKey: String, _ value: Any, file: String) throws {
        let key = rawKey.replacingOccurrences(of: "-", with: "_")
        func bad(_ expected: String) -> Error { TrainError.config(file: file, reason: "\(rawKey): expected \(expected), found \(value)") }
        func int() throws -> Int {
            if let i = value as? Int { return i }
            if let d = value as? Double, let i = Int(exactly: d) { return i }   // 3.0 yes; 2.5 and 1e300 no
            if let s = value as? String, let i = Int(s) { return i }
            throw bad("an integer")
        }
        func float() throws -> Double {
            if let d = value as? Double { return d }
            if let i = value as? Int { return Double(i) }
            if let s = value as? String, let d = Double(s) { return d }
            throw bad("a number")
        }
        func bool() throws -> Bool {
            if let b = value as? Bool { return b }
            if let s = value as? String, let b = ["true": true, "false": false, "yes": true, "no": false][s.lowercased()] { return b }
            throw bad("true or false")
        }
        func string() throws -> String {
            if let s = value as? String { return s }
            throw bad("a string")
        }
        switch key {
        case "model": model = try string()
        case "data": data = try string()
        case "adapter_path": adapterPath = try string()
        case "rank": rank = try int()
        case "alpha": alpha = Float(try float())
        case "dropout": dropout = Float(try float())
        case "use_rslora": useRSLoRA = try bool()
        case "targets":
            let names = try (value as? [Any])?.map { "\($0)" } ?? string().split(separator: ",").map(String.init)
            targets = try TrainConfig.parseTargets(names.joined(separator: ","))
        case "num_layers": let n = try int(); numLayers = n < 0 ? nil : n
        case "learning_rate": learningRate = Float(try float())
        case "lr_schedule":
            guard let k = LRSchedule.Kind(rawValue: try string()) else { throw bad("constant or cosine") }
            lrSchedule = k
        case "warmup": warmup = try int()
        case "weight_decay": weightDecay = Float(try float())
        case "beta1": beta1 = Float(try float())
        case "beta2": beta2 = Float(try float())
        case "eps": eps = Float(try float())
        case "batch_size": batchSize = try int()
        case "grad_accum": gradAccum = try int()
        case "max_seq_len": maxSeqLen = try int()
        case "iters": iters = try int()
        case "epochs": epochs = try float()
        case "seed": let s = try int(); guard s >= 0 else { throw bad("a non-negative integer") }; seed = UInt64(s)
        case "steps_per_eval": stepsPerEval = try int()
        case "val_examples": valExamples = try int()
        case "save_every": saveEvery = try int()
        case "grad_checkpoint": gradCheckpoint = try bool()
        case "threads": threads = try int()
        case "mask_prompt": maskPrompt = try bool()
        case "skip_bad": skipBad = try bool()
        default:
            throw TrainError.config(file: file, reason: "unknown key \"\(rawKey)\" (known: \(TrainConfig.keys.joined(separator: ", ")))")
        }
    }

    /// "q_proj,k_proj,attn_v,ffn_up" → targets (HF or GGUF spellings), or an error naming the bad one.
    public static func parseTargets(_ list: String) throws -> [LoRATarget] {
        var out: [LoRATarget] = []
        for raw in list.split(separator: ",") {
            let name = raw.trimmingCharacters(in: .whitespaces)
            if name == "all" { return LoRATarget.allCases }
            guard let t = LoRATarget(name: name) else {
                throw TrainError.option("--targets: \(name) is not a PHI-2 linear layer (q_proj, k_proj, v_proj, dense, fc1, fc2 or attn_q, attn_k, attn_v, attn_output, ffn_up, ffn_down)")
            }
            if !out.contains(t) { out.append(t) }
        }
        guard !out.isEmpty else { throw TrainError.option("--targets: empty list") }
        return out.sorted { $0.rawValue < $1.rawValue }
    }

    /// Reads a YAML or JSON file into this config.
    public mutating func load(file: String) throws {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw TrainError.config(file: file, reason: "cannot read the file")
        }
        let dict: [(String, Any)]
        if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{") {
            guard let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw TrainError.config(file: file, reason: "not a valid JSON object")
            }
            dict = o.sorted { $0.key < $1.key }.map { ($0.key, $0.value is NSNull ? "-1" as Any : $0.value) }
        } else {
            dict = try SimpleYAML.parse(text, file: file)
        }
        for (k, v) in dict { try set(k, v, file: file) }
    }

    /// Checks that the settings make sense together; errors name the option.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw TrainError.option(message) } }
        try check(rank >= 1 && rank <= 4096, "--rank must be between 1 and 4096")
        try check(alpha > 0 && alpha.isFinite, "--alpha must be positive")
        try check(dropout >= 0 && dropout < 1, "--dropout must be in [0, 1)")
        try check(learningRate > 0 && learningRate.isFinite, "--learning-rate must be positive")
        try check(warmup >= 0, "--warmup must be ≥ 0")
        try check(weightDecay >= 0, "--weight-decay must be ≥ 0")
        try check((0 ..< 1).contains(beta1) && (0 ..< 1).contains(beta2), "--beta1 and --beta2 must be in [0, 1)")
        try check(eps > 0, "--eps must be positive")
        try check(batchSize >= 1, "--batch-size must be ≥ 1")
        try check(gradAccum >= 1, "--grad-accum must be ≥ 1")
        try check(maxSeqLen >= 2 && maxSeqLen <= 1 << 16, "--max-seq-len must be between 2 and 65536")
        try check(iters.map { $0 >= 1 } ?? true, "--iters must be ≥ 1")
        try check(epochs.map { $0 > 0 && $0.isFinite } ?? true, "--epochs must be positive")
        try check(iters == nil || epochs == nil, "give --iters or --epochs, not both")
        try check(stepsPerEval >= 0 && saveEvery >= 0, "--steps-per-eval and --save-every must be ≥ 0")
        try check(numLayers.map { $0 >= 1 } ?? true, "--num-layers must be ≥ 1 (or -1 for all)")
        try check(threads.map { $0 >= 1 } ?? true, "--threads must be ≥ 1")
        try check(valExamples.map { $0 >= 1 } ?? true, "--val-examples must be ≥ 1")
    }

    /// The settings that decide the numbers of a run: a resumed run must agree on all of them.
    var fingerprint: [String: String] {
        ["rank": "\(rank)", "alpha": "\(alpha)", "dropout": "\(dropout)", "use_rslora": "\(useRSLoRA)",
         "targets": targets.map(\.rawValue).joined(separator: ","), "num_layers": "\(numLayers ?? -1)",
         "learning_rate": "\(learningRate)", "lr_schedule": lrSchedule.rawValue, "warmup": "\(warmup)",
         "weight_decay": "\(weightDecay)", "betas": "\(beta1),\(beta2)", "eps": "\(eps)", "batch_size": "\(batchSize)",
         "grad_accum": "\(gradAccum)", "max_seq_len": "\(maxSeqLen)", "seed": "\(seed)", "mask_prompt": "\(maskPrompt)"]
    }
}

/// The subset of YAML a training config needs: `key: value` lines, `# comments`, values that are numbers,
/// booleans, quoted or bare strings, `[a, b]` lists, or block lists of `- item` lines under a key.
enum SimpleYAML {
    static func parse(_ text: String, file: String) throws -> [(String, Any)] {
        var out: [(String, Any)] = []
        var listKey: String? = nil, list: [Any] = []
        func flush() { if let k = listKey { out.append((k, list)); listKey = nil; list = [] } }
        for (i, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = String(rawLine)
            if let hash = line.firstIndex(of: "#"), !line[..<hash].contains("\"") && !line[..<hash].contains("'") {
                line = String(line[..<hash])
            }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed == "---" { continue }
            if trimmed.hasPrefix("- ") || trimmed == "-" {
                guard listKey != nil else { throw TrainError.config(file: file, reason: "line \(i + 1): list item without a key") }
                list.append(scalar(String(trimmed.dropFirst()).trimmingCharacters(in: .whitespaces)))
                continue
            }
            flush()
            guard let colon = trimmed.firstIndex(of: ":"), !line.hasPrefix(" "), !line.hasPrefix("\t") else {
                throw TrainError.config(file: file, reason: "line \(i + 1): expected `key: value` (nested mappings are not supported)")
            }
            let key = String(trimmed[..<colon]).trimmingCharacters(in: .whitespaces)
            let value = String(trimmed[trimmed.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            if value.isEmpty { listKey = key; continue }
            if value.hasPrefix("[") {
                guard value.hasSuffix("]") else { throw TrainError.config(file: file, reason: "line \(i + 1): unclosed [") }
                let inner = value.dropFirst().dropLast()
                out.append((key, inner.split(separator: ",").map { scalar($0.trimmingCharacters(in: .whitespaces)) }))
            } else {
                out.append((key, scalar(value)))
            }
        }
        flush()
        return out
    }

    static func scalar(_ s: String) -> Any {
        if s.count >= 2, let f = s.first, f == "\"" || f == "'", s.last == f { return String(s.dropFirst().dropLast()) }
        switch s.lowercased() {
        case "true", "yes": return true
        case "false", "no": return false
        case "null", "~": return "-1"
        default: break
        }
        if let i = Int(s) { return i }
        if let d = Double(s) { return d }
        return s
    }
}
