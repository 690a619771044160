import BonsaiFormats
import CBonsai

// PHI-2 (Microsoft, 2023): a decoder-only transformer whose blocks run attention and the MLP in
// parallel off one LayerNorm:
//
//     h = ln(x);  x = x + attn(h) + mlp(h)
//
// attention: q, k, v = h Wq + bq, h Wk + bk, h Wv + bv; NeoX rotary on the first rotary_dim dims of
//            each head; softmax(q k^T / sqrt(head_dim), causal) v; then dense.
// mlp:       fc2(gelu_new(fc1(h)))
// output:    lm_head(final_layernorm(x)), untied, with a bias.

/// Weights of one block. Names are the checkpoint's; shapes are torch's [out, in].
public struct Phi2Block: @unchecked Sendable {
    public let input_layernorm_weight: FloatBuffer   // [hidden]
    public let input_layernorm_bias: FloatBuffer     // [hidden]
    public let q_proj: QuantizedMatrix               // [hidden, hidden]
    public let q_proj_bias: FloatBuffer              // [hidden]
    public let k_proj: QuantizedMatrix               // [hidden, hidden]
    public let k_proj_bias: FloatBuffer              // [hidden]
    public let v_proj: QuantizedMatrix               // [hidden, hidden]
    public let v_proj_bias: FloatBuffer              // [hidden]
    public let dense: QuantizedMatrix                // [hidden, hidden]
    public let dense_bias: FloatBuffer               // [hidden]
    public let fc1: QuantizedMatrix                  // [intermediate, hidden]
    public let fc1_bias: FloatBuffer                 // [intermediate]
    public let fc2: QuantizedMatrix                  // [hidden, intermediate]
    public let fc2_bias: FloatBuffer                 // [hidden]
}

public final class Phi2: @unchecked Sendable {
    public let config: Phi2Config
    public let embed_tokens: QuantizedMatrix         // [vocab, hidden]
    public let layers: [Phi2Block]
    public let final_layernorm_weight: FloatBuffer   // [hidden]
    public let final_layernorm_bias: FloatBuffer     // [hidden]
    public let lm_head: QuantizedMatrix              // [vocab, hidden]
    public let lm_head_bias: FloatBuffer             // [vocab]
    /// A LoRA adapter applied at run time beside the frozen linear layers (`--lora`), or nil.
    public var adapter: LoRAAdapter?

    public init(config: Phi2Config, embed_tokens: QuantizedMatrix, layers: [Phi2Block],
                final_layernorm_weight: FloatBuffer, final_layernorm_bias: FloatBuffer,
                lm_head: QuantizedMatrix, lm_head_bias: FloatBuffer) {
        self.config = config
        self.embed_tokens = embed_tokens
        self.layers = layers
        self.final_layernorm_weight = final_layernorm_weight
        self.final_layernorm_bias = final_layernorm_bias
        self.lm_head = lm_head
        self.lm_head_bias = lm_head_bias
    }

    /// Bytes of all weights as loaded (mapped or owned).
    public var weightBytes: Int {
        let mats = layers.flatMap { [$0.q_proj, $0.k_proj, $0.v_proj, $0.dense, $0.fc1, $0.fc2] } + [embed_tokens, lm_head]
        return mats.reduce(0) { $0 + $1.byteCount }
    }
}

/// Activation buffers for up to `maxTokens` tokens per forward call; allocated once per session.
public final class Phi2Activations: @unchecked Sendable {
    public let maxTokens: Int
    let x, h, q, attn, a, m: FloatBuffer   // [maxTokens, hidden]
    let k, v: FloatBuffer                  // [maxTokens, hidden]: this pass's keys and values, then into the cache
    let ff: FloatBuffer                    // [maxTokens, intermediate]
    let scores: FloatBuffer                // attention scratch: [threads, nCtx]
    /// Logits of the last forward call: [n, vocab] where n is 1 or the token count (see `forward`).
    public let logits: FloatBuffer

    public init(config c: Phi2Config, maxTokens: Int, nCtx: Int, allLogits: Bool) {
        self.maxTokens = maxTokens
        let d = c.hidden_size
        x = FloatBuffer(count: maxTokens * d)
        h = FloatBuffer(count: maxTokens * d)
        q = FloatBuffer(count: maxTokens * d)
        k = FloatBuffer(count: maxTokens * d)
        v = FloatBuffer(count: maxTokens * d)
        attn = FloatBuffer(count: maxTokens * d)
        a = FloatBuffer(count: maxTokens * d)
        m = FloatBuffer(count: maxTokens * d)
        ff = FloatBuffer(count: maxTokens * c.intermediate_size)
        scores = FloatBuffer(count: Int(bonsai_max_threads()) * nCtx)
        logits = FloatBuffer(count: (allLogits ? maxTokens : 1) * c.vocab_size)
    }
}

extension Phi2 {
    /// Runs `tokens` at positions cache.length ..< cache.length + tokens.count, appending their keys and
    /// values to the cache. Writes logits of the last token, or of every token when `allLogits`
    /// (the activations must have been made with allLogits), into `act.logits`.
    public func forward(_ tokens: [Int], cache: KVCache, act: Phi2Activations, allLogits: Bool = false) throws {
        let c = config
        let T = tokens.count, d = c.hidden_size, pos0 = cache.length
        precondition(T > 0 && T <= act.maxTokens, "forward: \(T) tokens, buffers hold \(act.maxTokens)")
        guard pos0 + T <= cache.nCtx else { throw ModelError.contextFull(nCtx: cache.nCtx) }
        for id in tokens where id < 0 || id >= c.vocab_size {
            throw ModelError.invalidOption("token id \(id) is outside the vocabulary (0..<\(c.vocab_size))")
        }
        let x = act.x.pointer, h = act.h.pointer, q = act.q.pointer
        let scale = 1 / Float(c.head_dim).squareRoot()

        // token embedding: x [T, d]
        for (t, id) in tokens.enumerated() { embed_tokens.dequantizeRow(id, into: x + t * d) }

        for (l, block) in layers.enumerated() {
            // y += scale · (x A^T) B^T where the adapter has a pair for this layer's linear
            func lora(_ target: LoRATarget, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
                adapter?.apply(layer: l, target, x: x, count: T, y: y, yStride: target == .fc1 ? c.intermediate_size : d)
            }
            let kRows = act.k.pointer, vRows = act.v.pointer
            // h = input_layernorm(x)
            bonsai_layernorm_forward(h, nil, nil, x, block.input_layernorm_weight.pointer, block.input_layernorm_bias.pointer,
                                     Int64(T), Int64(d), c.layer_norm_eps)
            // q, k, v = h W^T + b; ff = fc1(h): all four read h
            QuantizedMatrix.multiply([.init(block.q_proj, h, into: q, bias: block.q_proj_bias.pointer),
                                      .init(block.k_proj, h, into: kRows, bias: block.k_proj_bias.pointer),
                                      .init(block.v_proj, h, into: vRows, bias: block.v_proj_bias.pointer),
                                      .init(block.fc1, h, into: act.ff.pointer, bias: block.fc1_bias.pointer)], count: T)
            lora(.q_proj, h, q); lora(.k_proj, h, kRows); lora(.v_proj, h, vRows); lora(.fc1, h, act.ff.pointer)
            bonsai_rope_neox_forward(q, Int64(T), Int64(d), Int32(c.num_attention_heads), Int32(c.head_dim),
                                     Int32(c.rotary_dim), c.rope_theta, Int64(pos0))
            bonsai_rope_neox_forward(kRows, Int64(T), Int64(d), Int32(c.num_attention_heads), Int32(c.head_dim),
                                     Int32(c.rotary_dim), c.rope_theta, Int64(pos0))
            cache.store(layer: l, at: pos0, keys: kRows, values: vRows, count: T)
            // attn = softmax(q k^T * scale) v over positions 0 ... pos0 + t
            bonsai_attention_forward_kv(act.attn.pointer, q, Int64(d), cache.keys[l], cache.values[l], cache.element.type,
                                        cache.rowStride, cache.headStride, Int64(T), Int64(pos0),
                                        Int32(c.num_attention_heads), Int32(c.head_dim), scale, act.scores.pointer)
            // a = dense(attn);  m = fc2(gelu(ff))
            bonsai_gelu_forward(act.ff.pointer, Int64(T * c.intermediate_size))
            QuantizedMatrix.multiply([.init(block.dense, act.attn.pointer, into: act.a.pointer, bias: block.dense_bias.pointer),
                                      .init(block.fc2, act.ff.pointer, into: act.m.pointer, bias: block.fc2_bias.pointer)], count: T)
            lora(.dense, act.attn.pointer, act.a.pointer); lora(.fc2, act.ff.pointer, act.m.pointer)
            // x = x + a + m
            bonsai_add3(x, act.a.pointer, act.m.pointer, Int64(T * d))
        }
        cache.length = pos0 + T

        // logits = lm_head(final_layernorm(x)), for the last token or all of them
        let first = allLogits ? 0 : T - 1, n = T - first
        precondition(n * c.vocab_size <= act.logits.count, "forward: logits buffer too small for all tokens")
        bonsai_layernorm_forward(h, nil, nil, x + first * d, final_layernorm_weight.pointer, final_layernorm_bias.pointer,
                                 Int64(n), Int64(d), c.layer_norm_eps)
        lm_head.multiply(h, count: n, into: act.logits.pointer, bias: lm_head_bias.pointer)
    }
}
