/// The one place where GGUF and Hugging Face tensor names meet. Keys are the checkpoint's (HF) names
/// relative to a layer; values llama.cpp's.
public enum TensorNames {
    public static let perLayer: [(hf: String, gguf: String)] = [
        ("input_layernorm.weight", "attn_norm.weight"),
        ("input_layernorm.bias", "attn_norm.bias"),
        ("self_attn.q_proj.weight", "attn_q.weight"),
        ("self_attn.q_proj.bias", "attn_q.bias"),
        ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.k_proj.bias", "attn_k.bias"),
        ("self_attn.v_proj.weight", "attn_v.weight"),
        ("self_attn.v_proj.bias", "attn_v.bias"),
        ("self_attn.dense.weight", "attn_output.weight"),
        ("self_attn.dense.bias", "attn_output.bias"),
        ("mlp.fc1.weight", "ffn_up.weight"),
        ("mlp.fc1.bias", "ffn_up.bias"),
        ("mlp.fc2.weight", "ffn_down.weight"),
        ("mlp.fc2.bias", "ffn_down.bias"),
    ]

    public static let global: [(hf: String, gguf: String)] = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.final_layernorm.weight", "output_norm.weight"),
        ("model.final_layernorm.bias", "output_norm.bias"),
        ("lm_head.weight", "output.weight"),
        ("lm_head.bias", "output.bias"),
    ]

    /// Older phi-2 GGUF files fuse q, k and v (rows q, then k, then v).
    public static let fusedQKV = (weight: "attn_qkv.weight", bias: "attn_qkv.bias")

    private static let hfToGGUF: [String: String] = Dictionary(uniqueKeysWithValues: perLayer + global)
    private static let ggufToHF: [String: String] = Dictionary(uniqueKeysWithValues: (perLayer + global).map { ($0.gguf, $0.hf) })

    /// "model.layers.3.mlp.fc1.weight" → "blk.3.ffn_up.weight"
    public static func gguf(fromHF name: String) -> String? {
        if let g = hfToGGUF[name] { return g }
        let parts = name.split(separator: ".", maxSplits: 3)
        guard parts.count == 4, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]),
              let g = hfToGGUF[String(parts[3])] else { return nil }
        return "blk.\(l).\(g)"
    }

    /// "blk.3.ffn_up.weight" → "model.layers.3.mlp.fc1.weight"
    public static func hf(fromGGUF name: String) -> String? {
        if let h = ggufToHF[name] { return h }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let l = Int(parts[1]), let h = ggufToHF[String(parts[2])] else { return nil }
        return "model.layers.\(l).\(h)"
    }
}
