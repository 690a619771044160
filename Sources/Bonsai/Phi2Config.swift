import BonsaiFormats
import Foundation

/// PHI-2's hyper-parameters. Field names are config.json's; the GGUF keys are noted beside each.
public struct Phi2Config: Equatable, Sendable {
    public var hidden_size: Int                 // phi2.embedding_length            (2560)
    public var intermediate_size: Int           // phi2.feed_forward_length         (10240)
    public var num_hidden_layers: Int           // phi2.block_count                 (32)
    public var num_attention_heads: Int         // phi2.attention.head_count        (32)
    public var num_key_value_heads: Int         // phi2.attention.head_count_kv     (32)
    public var rotary_dim: Int                  // phi2.rope.dimension_count        (32 = 0.4 × head_dim 80)
    public var rope_theta: Float                // phi2.rope.freq_base (absent: 10000)
    public var layer_norm_eps: Float            // phi2.attention.layer_norm_epsilon (1e-5)
    public var vocab_size: Int                  // rows of token_embd               (51200)
    public var max_position_embeddings: Int     // phi2.context_length              (2048)

    public var head_dim: Int { hidden_size / num_attention_heads }

    /// From a Hugging Face config.json (model_type "phi").
    /// config.json as transformers writes it for PhiForCausalLM (microsoft/phi-2's keys).
    public func hfConfig(torchDtype: String) -> [String: Any] {
        [
            "architectures": ["PhiForCausalLM"], "model_type": "phi",
            "hidden_size": hidden_size, "intermediate_size": intermediate_size,
            "num_hidden_layers": num_hidden_layers, "num_attention_heads": num_attention_heads,
            "num_key_value_heads": num_key_value_heads,
            "partial_rotary_factor": Double(rotary_dim) / Double(head_dim), "rope_theta": Double(rope_theta),
            "rope_scaling": NSNull(), "layer_norm_eps": Double(layer_norm_eps), "vocab_size": vocab_size,
            "max_position_embeddings": max_position_embeddings, "hidden_act": "gelu_new", "qk_layernorm": false,
            "bos_token_id": 50256, "eos_token_id": 50256, "tie_word_embeddings": false, "torch_dtype": torchDtype,
            "attention_dropout": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.1, "initializer_range": 0.02, "use_cache": true,
        ]
    }

    /// The config of a model path: a Hugging Face folder's config.json or a GGUF's phi2.* keys.
    public static func load(path: String) throws -> Phi2Config {
        if HFRepo.looksLikeRepo(path) { return try Phi2Config(hf: HFRepo.readJSONObject(path + "/config.json"), path: path + "/config.json") }
        return try Phi2Config(gguf: GGUFFile(path: path))
    }

    public init(hf c: [String: Any], path: String) throws {
        func int(_ k: String) throws -> Int {
            // Int(exactly:): 1e300 or 2.5 in a damaged config is an error, not a trap
            guard let v = c[k] as? Int ?? (c[k] as? Double).flatMap({ Int(exactly: $0) }) else {
                throw ModelError.badConfig(path: path, reason: "config.json needs an integer \(k)")
            }
            return v
        }
        let modelType = c["model_type"] as? String ?? "?"
        guard modelType == "phi" else { throw ModelError.wrongArchitecture(path: path, found: "model_type \(modelType)") }
        hidden_size = try int("hidden_size")
        intermediate_size = try int("intermediate_size")
        num_hidden_layers = try int("num_hidden_layers")
        num_attention_heads = try int("num_attention_heads")
        num_key_value_heads = (c["num_key_value_heads"] as? Int) ?? num_attention_heads
        vocab_size = try int("vocab_size")
        max_position_embeddings = (c["max_position_embeddings"] as? Int) ?? 2048
        layer_norm_eps = Float((c["layer_norm_eps"] as? Double) ?? 1e-5)
        // rope settings: legacy top-level keys, or the newer rope_parameters object
        let rope = c["rope_parameters"] as? [String: Any] ?? [:]
        let factor = (c["partial_rotary_factor"] as? Double) ?? (rope["partial_rotary_factor"] as? Double) ?? 0.5
        rope_theta = Float((c["rope_theta"] as? Double) ?? (rope["rope_theta"] as? Double) ?? 10000)
        guard (0 ... 1).contains(factor) else {
            throw ModelError.badConfig(path: path, reason: "partial_rotary_factor \(factor) is not between 0 and 1")
        }
        // as transformers: int(partial_rotary_factor · head_dim); a bad head count is validate()'s error
        rotary_dim = num_attention_heads > 0 ? Int(Double(hidden_size / num_attention_heads) * factor) : 0
        if let scaling = c["rope_scaling"], !(scaling is NSNull) {
            throw ModelError.badConfig(path: path, reason: "rope_scaling is not supported")
        }
        try validate(path: path)
    }

    /// From GGUF metadata (architecture phi2).
    public init(gguf g: GGUFFile) throws {
        let arch = g.architecture ?? "(none)"
        guard arch == "phi2" else { throw ModelError.wrongArchitecture(path: g.path, found: arch) }
        func int(_ k: String) throws -> Int {
            guard let v = g["phi2." + k]?.int else {
                throw ModelError.badConfig(path: g.path, reason: "metadata phi2.\(k) is missing")
            }
            return v
        }
        hidden_size = try int("embedding_length")
        intermediate_size = try int("feed_forward_length")
        num_hidden_layers = try int("block_count")
        num_attention_heads = try int("attention.head_count")
        num_key_value_heads = (try? int("attention.head_count_kv")) ?? num_attention_heads
        rotary_dim = try int("rope.dimension_count")
        rope_theta = Float(g["phi2.rope.freq_base"]?.double ?? 10000)
        layer_norm_eps = Float(g["phi2.attention.layer_norm_epsilon"]?.double ?? 1e-5)
        max_position_embeddings = (try? int("context_length")) ?? 2048
        vocab_size = g.tensor("token_embd.weight")?.rows ?? 0
        try validate(path: g.path)
    }

    public init(hidden_size: Int, intermediate_size: Int, num_hidden_layers: Int, num_attention_heads: Int,
                rotary_dim: Int, vocab_size: Int, rope_theta: Float = 10000, layer_norm_eps: Float = 1e-5,
                max_position_embeddings: Int = 2048) {
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        num_key_value_heads = num_attention_heads
        self.rotary_dim = rotary_dim
        self.vocab_size = vocab_size
        self.rope_theta = rope_theta
        self.layer_norm_eps = layer_norm_eps
        self.max_position_embeddings = max_position_embeddings
    }

    public func validate(path: String) throws {
        func bad(_ s: String) -> ModelError { .badConfig(path: path, reason: s) }
        guard (1 ... 1 << 16).contains(hidden_size), (1 ... 1 << 18).contains(intermediate_size),
              (1 ... 1024).contains(num_hidden_layers), (1 ... 1 << 20).contains(vocab_size) else {
            throw bad("implausible sizes (hidden \(hidden_size), ff \(intermediate_size), layers \(num_hidden_layers), vocab \(vocab_size))")
        }
        guard num_attention_heads > 0, hidden_size % num_attention_heads == 0 else {
            throw bad("hidden size \(hidden_size) is not a multiple of the head count \(num_attention_heads)")
        }
        guard num_key_value_heads == num_attention_heads else {
            throw bad("grouped-query attention (kv heads \(num_key_value_heads) ≠ heads \(num_attention_heads)) is not PHI-2")
        }
        guard rotary_dim >= 0, rotary_dim <= head_dim, rotary_dim % 2 == 0 else {
            throw bad("rotary dims \(rotary_dim) must be even and at most head_dim \(head_dim)")
        }
        guard max_position_embeddings > 0 else { throw bad("context length must be positive") }
    }
}
