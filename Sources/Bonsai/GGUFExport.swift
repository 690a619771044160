import BonsaiFormats
import BonsaiTokenizer
import CBonsai

/// Writing PHI-2 GGUF files the way llama.cpp's convert_hf_to_gguf.py does: the same tensor names,
/// metadata keys and tokenizer arrays, 1-D tensors in f32, dense aligned data.
public enum GGUFExport {
    /// llama.cpp's general.file_type for a file whose weights are mostly `type`.
    public static func fileType(_ type: TensorType) -> Int {
        [TensorType.f32: 0, .f16: 1, .q4_0: 2, .q4_1: 3, .q8_0: 7, .q5_0: 8, .q5_1: 9, .q2_K: 10,
         .q4_K: 15, .q5_K: 17, .q6_K: 18, .iq4_nl: 25, .iq4_xs: 30, .bf16: 32][type] ?? 0
    }

    /// Architecture and tokenizer metadata of a phi2 GGUF.
    public static func metadata(config c: Phi2Config, tokenizer: Tokenizer, name: String, fileType: Int) -> [(key: String, value: GGUFValue)] {
        var tokens = tokenizer.tokens, kinds = tokenizer.kinds.map(\.rawValue)
        for i in tokens.count ..< max(tokens.count, c.vocab_size) {   // embedding rows without a token
            tokens.append("[PAD\(i)]")
            kinds.append(Tokenizer.TokenKind.unused.rawValue)
        }
        return [
            ("general.architecture", .string("phi2")),
            ("general.type", .string("model")),
            ("general.name", .string(name)),
            ("general.size_label", .string(sizeLabel(parameters: parameterCount(c)))),
            ("phi2.context_length", .uint32(UInt32(c.max_position_embeddings))),
            ("phi2.embedding_length", .uint32(UInt32(c.hidden_size))),
            ("phi2.feed_forward_length", .uint32(UInt32(c.intermediate_size))),
            ("phi2.block_count", .uint32(UInt32(c.num_hidden_layers))),
            ("phi2.attention.head_count", .uint32(UInt32(c.num_attention_heads))),
            ("phi2.attention.head_count_kv", .uint32(UInt32(c.num_key_value_heads))),
            ("phi2.attention.layer_norm_epsilon", .float32(c.layer_norm_eps)),
            ("phi2.rope.dimension_count", .uint32(UInt32(c.rotary_dim))),
            ("general.file_type", .uint32(UInt32(fileType))),
            ("tokenizer.ggml.add_bos_token", .bool(false)),
            ("general.quantization_version", .uint32(2)),
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("phi-2")),
            ("tokenizer.ggml.tokens", .array(elementType: 8, tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(elementType: 5, kinds.map { .int32(Int32($0)) })),
            ("tokenizer.ggml.merges", .array(elementType: 8, tokenizer.mergeList.map { .string($0.0 + " " + $0.1) })),
            ("tokenizer.ggml.bos_token_id", .uint32(UInt32(tokenizer.bosID))),
            ("tokenizer.ggml.eos_token_id", .uint32(UInt32(tokenizer.eosID))),
            ("tokenizer.ggml.unknown_token_id", .uint32(UInt32(tokenizer.eosID))),
            ("tokenizer.ggml.add_eos_token", .bool(false)),
        ]
    }

    /// gguf-py's rounded parameter count: "28M", "2.8B".
    public static func sizeLabel(parameters n: Int) -> String {
        let (scaled, suffix): (Double, String) = n > 1_000_000_000_000 ? (Double(n) * 1e-12, "T")
            : n > 1_000_000_000 ? (Double(n) * 1e-9, "B") : n > 1_000_000 ? (Double(n) * 1e-6, "M") : (Double(n) * 1e-3, "K")
        let digits = String(Int(scaled.rounded())).count
        return String(format: "%.\(max(2 - digits, 0))f%@", scaled, suffix)
    }

    /// Every weight of a PHI-2 model, counted as transformers counts them.
    public static func parameterCount(_ c: Phi2Config) -> Int {
        let d = c.hidden_size, ff = c.intermediate_size
        return 2 * c.vocab_size * d + c.vocab_size + 2 * d + c.num_hidden_layers * (4 * d * d + 4 * d + 2 * d * ff + ff + d + 2 * d)
    }

    /// Rewrites a split-q/k/v GGUF with fused `attn_qkv` weights and biases (rows q, then k, then v),
    /// the layout of older phi-2 GGUF files. Blocks are copied byte for byte.
    public static func fuseQKV(gguf g: GGUFFile, to out: String) throws {
        var w = GGUFWriter()
        w.metadata = g.metadata
        for t in g.tensors {
            let parts = t.name.split(separator: ".")
            guard parts.count == 4, parts[0] == "blk", ["attn_q", "attn_k", "attn_v"].contains(parts[2]) else {
                w.tensors.append(.init(name: t.name, type: t.type, ne: t.ne, bytes: UnsafeRawBufferPointer(start: t.data, count: t.byteCount)))
                continue
            }
            guard parts[2] == "attn_q" else { continue }   // k and v join q's entry
            let p = "blk.\(parts[1]).", suffix = String(parts[3])
            let pieces = try ["attn_q", "attn_k", "attn_v"].map { n -> TensorRef in
                guard let x = g.tensor(p + n + "." + suffix), x.type == t.type, x.cols == t.cols else {
                    throw ModelError.badTensor(path: g.path, name: p + n + "." + suffix, reason: "q, k and v must share type and width to fuse")
                }
                return x
            }
            let ne = t.ne.count == 1 ? [3 * t.ne[0]] : [t.cols, pieces.reduce(0) { $0 + $1.rows }]
            w.tensors.append(.init(name: p + "attn_qkv." + suffix, type: t.type, ne: ne) { sink in
                for x in pieces { try sink.write(UnsafeRawBufferPointer(start: x.data, count: x.byteCount)) }
            })
        }
        try w.write(to: out)
    }
}
