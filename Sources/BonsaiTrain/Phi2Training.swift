import Bonsai
import CBonsai

// The training pass of PHI-2 with LoRA: a forward pass that keeps what the backward pass needs, and the
// backward pass itself, block by block in reverse. The base weights are frozen (any GGUF type); only the
// adapter's A and B receive gradients. Each sequence is its own batch row: no padding, no attention mask.
//
// Forward, per block (shapes for one sequence of T tokens, d = hidden, f = intermediate):
//   h = ln(x)                                    [T, d]   (mean, rstd [T] kept)
//   q, k, v = h W^T + b + lora(h)                [T, d]   (q, k rotated in place; u = h A^T kept per pair)
//   attn = softmax(q k^T / sqrt(hd), causal) v   [T, d]   (probs [H, T, T] kept)
//   a = dense(attn) + lora(attn)                 [T, d]
//   p = fc1(h) + lora(h);  g = gelu(p)           [T, f]
//   m = fc2(g) + lora(g)                         [T, d]
//   x' = x + a + m
// Backward, per block, from dx' [T, d]: da = dm = dx' (the residual passes dx' on unchanged), then
//   dg = dm W2 (+ lora), dp = dg gelu'(p), dh = dp W1 (+ lora); dattn = da Wd (+ lora);
//   dq, dk, dv = attention_backward(dattn); rotate dq, dk back; dh += dq Wq + dk Wk + dv Wv (+ loras);
//   dx = dx' + ln_backward(dh).

/// What the backward pass of one block needs from its forward pass.
/// (a, m and gelu(p) are not kept: the first two are only added into x, the last is recomputed from p.)
final class BlockActivations {
    let x, h, q, k, v, attn: FloatBuffer            // [T, d]
    let mean, rstd: FloatBuffer                     // [T]
    let probs: FloatBuffer                          // [H, T, T]
    let p: FloatBuffer                              // [T, f]: fc1 output before gelu
    var u: [LoRATarget: FloatBuffer] = [:]          // [T, r] = input A^T, per adapted linear

    init(config c: Phi2Config, maxTokens T: Int, ranks: [LoRATarget: Int]) {
        let d = c.hidden_size, f = c.intermediate_size
        (x, h, q, k, v, attn) = (FloatBuffer(count: T * d), FloatBuffer(count: T * d), FloatBuffer(count: T * d),
                                 FloatBuffer(count: T * d), FloatBuffer(count: T * d), FloatBuffer(count: T * d))
        (mean, rstd) = (FloatBuffer(count: T), FloatBuffer(count: T))
        probs = FloatBuffer(count: c.num_attention_heads * T * T)
        p = FloatBuffer(count: T * f)
        for (t, r) in ranks { u[t] = FloatBuffer(count: T * r) }
    }
}

/// Forward and backward passes of PHI-2 + LoRA over one sequence at a time, with buffers for up to
/// `maxTokens` tokens allocated once. Gradients accumulate into `grads` until the caller zeroes them.
public final class Phi2Training: @unchecked Sendable {
    public let model: Phi2
    public let adapter: LoRAAdapter
    public let grads: LoRAGradients
    public let maxTokens: Int
    /// Recompute each block's forward during the backward pass instead of keeping all blocks' activations:
    /// memory of one block instead of all, for one more forward pass of compute.
    public let checkpointing: Bool
    /// LoRA dropout probability on each adapter's input (PEFT's lora_dropout); masks are hashed from the
    /// seed given to `run`, so they repeat exactly on recomputation and after a resume.
    public let dropout: Float
    private var dropoutSeed: UInt64 = 0
    /// Polled before every block: when it returns true, `run` stops early and returns nil (Ctrl-C on a
    /// full-size model should not wait for the rest of a sequence's forward and backward passes).
    public var abort: () -> Bool = { false }

    /// Blocks below this one have no adapter: they run forward only, and the backward pass stops here.
    let firstTrainable: Int
    let saved: [BlockActivations]                   // one per trainable block, or one shared (checkpointing)
    let blockInputs: [FloatBuffer]                  // x at each trainable block's input (checkpointing)
    let x, dx, dh, dq, dk, dv, dattn: FloatBuffer   // [T, d]
    let dg: FloatBuffer                             // [T, f]
    let a, m: FloatBuffer                           // [T, d]: the block's two branch outputs, shared by all blocks
    let g: FloatBuffer                              // [T, f]: gelu(p), made again where it is needed
    let finalX, finalH, finalMean, finalRstd: FloatBuffer
    let loraScratch: FloatBuffer                    // [2 T r]
    var logits: FloatBuffer                         // [targets, vocab], grown as needed
    var selected: FloatBuffer                       // [targets, d]
    let scores: FloatBuffer                         // forward-only blocks: attention scratch

    public init(model: Phi2, adapter: LoRAAdapter, maxTokens: Int, checkpointing: Bool = false, dropout: Float = 0) {
        let c = model.config, d = c.hidden_size, T = maxTokens
        precondition(adapter.pairs.contains { !$0.isEmpty }, "an adapter with no pairs has nothing to train")
        self.model = model
        self.adapter = adapter
        self.grads = LoRAGradients(like: adapter)
        self.maxTokens = maxTokens
        self.checkpointing = checkpointing
        self.dropout = dropout
        firstTrainable = adapter.pairs.firstIndex { !$0.isEmpty } ?? c.num_hidden_layers
        let trainable = c.num_hidden_layers - firstTrainable
        var ranks: [LoRATarget: Int] = [:]
        for layer in adapter.pairs { for (t, p) in layer { ranks[t] = max(ranks[t] ?? 0, p.rank) } }
        saved = (0 ..< (checkpointing ? min(1, trainable) : trainable)).map { _ in
            BlockActivations(config: c, maxTokens: T, ranks: ranks)
        }
        blockInputs = checkpointing ? (0 ..< trainable).map { _ in FloatBuffer(count: T * d) } : []
        (x, dx, dh, dq, dk, dv, dattn) = (FloatBuffer(count: T * d), FloatBuffer(count: T * d), FloatBuffer(count: T * d),
                                          FloatBuffer(count: T * d), FloatBuffer(count: T * d), FloatBuffer(count: T * d),
                                          FloatBuffer(count: T * d))
        dg = FloatBuffer(count: T * c.intermediate_size)
        (a, m, g) = (FloatBuffer(count: T * d), FloatBuffer(count: T * d), FloatBuffer(count: T * c.intermediate_size))
        (finalX, finalH) = (FloatBuffer(count: T * d), FloatBuffer(count: T * d))
        (finalMean, finalRstd) = (FloatBuffer(count: T), FloatBuffer(count: T))
        loraScratch = FloatBuffer(count: 2 * T * max(ranks.values.max() ?? 1, 1)
                                  + (dropout > 0 ? 2 * T * max(d, c.intermediate_size) : 0))
        logits = FloatBuffer(count: c.vocab_size)
        selected = FloatBuffer(count: d)
        scores = FloatBuffer(count: Int(bonsai_max_threads()) * T)
    }

    /// Loss of one sequence and, unless `backward` is false, its gradients added into `grads`.
    /// targets[t] is the token position t must predict (tokens[t + 1]) or nil where there is no loss.
    /// Returns the summed cross-entropy over the targets (nats) and their count; the gradients are those of
    /// gradScale × that sum (pass 1 / total targets of the batch for a mean loss).
    /// nil when `abort` stopped it (the gradients are then partial: drop them).
    @discardableResult
    public func run(tokens: [Int], targets: [Int?], gradScale: Float, backward: Bool = true,
                    dropoutSeed: UInt64 = 0) -> (lossSum: Double, count: Int)? {
        let c = model.config, T = tokens.count, d = c.hidden_size, V = c.vocab_size
        precondition(T > 0 && T <= maxTokens && targets.count == T)
        self.dropoutSeed = dropoutSeed
        for (t, id) in tokens.enumerated() { model.embed_tokens.dequantizeRow(id, into: x.pointer + t * d) }

        for l in 0 ..< c.num_hidden_layers {
            if abort() { return nil }
            if l < firstTrainable {
                frozenBlockForward(l, T: T)
            } else if checkpointing {
                blockInputs[l - firstTrainable].pointer.update(from: x.pointer, count: T * d)
                blockForward(l, saved[0], T: T)
            } else {
                blockForward(l, saved[l - firstTrainable], T: T)
            }
        }

        // logits only where there is a target: [n, V] = lm_head(final_layernorm(x)[rows with a target])
        finalX.pointer.update(from: x.pointer, count: T * d)
        bonsai_layernorm_forward(finalH.pointer, finalMean.pointer, finalRstd.pointer, finalX.pointer,
                                 model.final_layernorm_weight.pointer, model.final_layernorm_bias.pointer,
                                 Int64(T), Int64(d), c.layer_norm_eps)
        let rows = (0 ..< T).filter { targets[$0] != nil }
        let n = rows.count
        guard n > 0 else { return (0, 0) }
        if logits.count < n * V { logits = FloatBuffer(count: n * V); selected = FloatBuffer(count: n * d) }
        for (i, t) in rows.enumerated() { (selected.pointer + i * d).update(from: finalH.pointer + t * d, count: d) }
        model.lm_head.multiply(selected.pointer, count: n, into: logits.pointer, bias: model.lm_head_bias.pointer)
        let ids = rows.map { Int32(targets[$0]!) }
        let loss = bonsai_cross_entropy(logits.pointer, ids, Int64(n), Int64(V), gradScale)
        guard backward, firstTrainable < c.num_hidden_layers else { return (loss, n) }

        // d final_layernorm output, rows with a target only; then into the residual stream dx
        model.lm_head.multiplyBackward(logits.pointer, count: n, into: selected.pointer, accumulate: false)
        dh.pointer.update(repeating: 0, count: T * d)
        for (i, t) in rows.enumerated() { (dh.pointer + t * d).update(from: selected.pointer + i * d, count: d) }
        dx.pointer.update(repeating: 0, count: T * d)
        bonsai_layernorm_backward(dx.pointer, dh.pointer, finalX.pointer, finalMean.pointer, finalRstd.pointer,
                                  model.final_layernorm_weight.pointer, Int64(T), Int64(d))

        for l in stride(from: c.num_hidden_layers - 1, through: firstTrainable, by: -1) {
            if abort() { return nil }
            let s: BlockActivations
            if checkpointing {
                x.pointer.update(from: blockInputs[l - firstTrainable].pointer, count: T * d)
                blockForward(l, saved[0], T: T)
                s = saved[0]
            } else {
                s = saved[l - firstTrainable]
            }
            blockBackward(l, s, T: T)
        }
        return (loss, n)
    }

    /// A block below the first adapted one: forward only, like inference (no cache kept).
    private func frozenBlockForward(_ l: Int, T: Int) {
        let c = model.config, b = model.layers[l], d = c.hidden_size
        let tmp = saved.first!   // its buffers are free until the trainable blocks run
        bonsai_layernorm_forward(tmp.h.pointer, nil, nil, x.pointer, b.input_layernorm_weight.pointer,
                                 b.input_layernorm_bias.pointer, Int64(T), Int64(d), c.layer_norm_eps)
        b.q_proj.multiply(tmp.h.pointer, count: T, into: tmp.q.pointer, bias: b.q_proj_bias.pointer)
        b.k_proj.multiply(tmp.h.pointer, count: T, into: tmp.k.pointer, bias: b.k_proj_bias.pointer)
        b.v_proj.multiply(tmp.h.pointer, count: T, into: tmp.v.pointer, bias: b.v_proj_bias.pointer)
        rotate(tmp, T: T)
        bonsai_attention_forward(tmp.attn.pointer, tmp.q.pointer, Int64(d), tmp.k.pointer, tmp.v.pointer, Int64(T), 0,
                                 Int32(c.num_attention_heads), Int32(c.head_dim), 1 / Float(c.head_dim).squareRoot(),
                                 scores.pointer)
        b.dense.multiply(tmp.attn.pointer, count: T, into: a.pointer, bias: b.dense_bias.pointer)
        b.fc1.multiply(tmp.h.pointer, count: T, into: g.pointer, bias: b.fc1_bias.pointer)
        bonsai_gelu_forward(g.pointer, Int64(T * c.intermediate_size))
        b.fc2.multiply(g.pointer, count: T, into: m.pointer, bias: b.fc2_bias.pointer)
        bonsai_add3(x.pointer, a.pointer, m.pointer, Int64(T * d))
    }

    private func rotate(_ s: BlockActivations, T: Int) {
        let c = model.config
        for buf in [s.q, s.k] {
            bonsai_rope_neox_forward(buf.pointer, Int64(T), Int64(c.hidden_size), Int32(c.num_attention_heads),
                                     Int32(c.head_dim), Int32(c.rotary_dim), c.rope_theta, 0)
        }
    }

    /// The dropout mask seed of one adapter pair in this sequence.
    private func seed(_ l: Int, _ target: LoRATarget) -> UInt64 {
        var z = dropoutSeed &+ UInt64(l * 16 + LoRATarget.allCases.firstIndex(of: target)! + 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 31)) &* 0xBF58_476D_1CE4_E5B9
        return z ^ (z >> 29)
    }

    /// y = x W^T + b, plus the adapter's pair (keeping u = x A^T) where there is one.
    private func linear(_ l: Int, _ target: LoRATarget, _ w: QuantizedMatrix, _ bias: FloatBuffer,
                        x: FloatBuffer, y: FloatBuffer, s: BlockActivations, T: Int) {
        w.multiply(x.pointer, count: T, into: y.pointer, bias: bias.pointer)
        guard let p = adapter.pairs[l][target] else { return }
        bonsai_lora_forward(y.pointer, Int64(p.outFeatures), s.u[target]!.pointer, x.pointer, p.A.pointer, p.B.pointer,
                            Int64(T), Int64(p.inFeatures), Int64(p.outFeatures), Int32(p.rank), adapter.scale(of: p),
                            dropout, seed(l, target))
    }

    /// dx (+)= dy W, plus the pair's input gradient; the pair's dA, dB accumulate. dx nil: only the pair's
    /// gradients are wanted (nothing below needs the input gradient).
    private func linearBackward(_ l: Int, _ target: LoRATarget, _ w: QuantizedMatrix, dy: FloatBuffer, x: FloatBuffer,
                                dx: FloatBuffer?, accumulate: Bool, s: BlockActivations, T: Int) {
        if let dx { w.multiplyBackward(dy.pointer, count: T, into: dx.pointer, accumulate: accumulate) }
        guard let p = adapter.pairs[l][target], let g = grads.pairs[l][target] else { return }
        bonsai_lora_backward(dx?.pointer, g.dA.pointer, g.dB.pointer, dy.pointer, Int64(p.outFeatures), x.pointer,
                             s.u[target]!.pointer, p.A.pointer, p.B.pointer, Int64(T), Int64(p.inFeatures),
                             Int64(p.outFeatures), Int32(p.rank), adapter.scale(of: p), dropout, seed(l, target),
                             loraScratch.pointer)
    }

    private func blockForward(_ l: Int, _ s: BlockActivations, T: Int) {
        let c = model.config, b = model.layers[l], d = c.hidden_size
        s.x.pointer.update(from: x.pointer, count: T * d)
        bonsai_layernorm_forward(s.h.pointer, s.mean.pointer, s.rstd.pointer, s.x.pointer, b.input_layernorm_weight.pointer,
                                 b.input_layernorm_bias.pointer, Int64(T), Int64(d), c.layer_norm_eps)
        linear(l, .q_proj, b.q_proj, b.q_proj_bias, x: s.h, y: s.q, s: s, T: T)
        linear(l, .k_proj, b.k_proj, b.k_proj_bias, x: s.h, y: s.k, s: s, T: T)
        linear(l, .v_proj, b.v_proj, b.v_proj_bias, x: s.h, y: s.v, s: s, T: T)
        rotate(s, T: T)
        bonsai_attention_train_forward(s.attn.pointer, s.probs.pointer, s.q.pointer, s.k.pointer, s.v.pointer, Int64(T),
                                       Int32(c.num_attention_heads), Int32(c.head_dim), 1 / Float(c.head_dim).squareRoot())
        linear(l, .dense, b.dense, b.dense_bias, x: s.attn, y: a, s: s, T: T)
        linear(l, .fc1, b.fc1, b.fc1_bias, x: s.h, y: s.p, s: s, T: T)
        g.pointer.update(from: s.p.pointer, count: T * c.intermediate_size)
        bonsai_gelu_forward(g.pointer, Int64(T * c.intermediate_size))
        linear(l, .fc2, b.fc2, b.fc2_bias, x: g, y: m, s: s, T: T)
        bonsai_add3(x.pointer, a.pointer, m.pointer, Int64(T * d))
    }

    /// From dx = d loss / d(block output) to d loss / d(block input), in place; pair gradients accumulate.
    private func blockBackward(_ l: Int, _ s: BlockActivations, T: Int) {
        let c = model.config, b = model.layers[l], d = c.hidden_size, f = c.intermediate_size
        // The lowest adapted block passes no gradient down: its h-gradient (the q/k/v/fc1 input gradients
        // and the LayerNorm backward, ~58% of a block's backward products) is never needed.
        let below = l > firstTrainable ? dh : nil
        // MLP: m = fc2(gelu(fc1(h)))
        if adapter.pairs[l][.fc2] != nil {   // fc2's pair needs its input gelu(p) again
            g.pointer.update(from: s.p.pointer, count: T * f)
            bonsai_gelu_forward(g.pointer, Int64(T * f))
        }
        linearBackward(l, .fc2, b.fc2, dy: dx, x: g, dx: dg, accumulate: false, s: s, T: T)
        bonsai_gelu_backward(dg.pointer, s.p.pointer, dg.pointer, Int64(T * f))
        linearBackward(l, .fc1, b.fc1, dy: dg, x: s.h, dx: below, accumulate: false, s: s, T: T)
        // attention: a = dense(attn(rope(q), rope(k), v))
        linearBackward(l, .dense, b.dense, dy: dx, x: s.attn, dx: dattn, accumulate: false, s: s, T: T)
        bonsai_attention_backward(dq.pointer, dk.pointer, dv.pointer, dattn.pointer, s.q.pointer, s.k.pointer, s.v.pointer,
                                  s.probs.pointer, Int64(T), Int32(c.num_attention_heads), Int32(c.head_dim),
                                  1 / Float(c.head_dim).squareRoot())
        for buf in [dq, dk] {
            bonsai_rope_neox_backward(buf.pointer, Int64(T), Int64(d), Int32(c.num_attention_heads), Int32(c.head_dim),
                                      Int32(c.rotary_dim), c.rope_theta, 0)
        }
        linearBackward(l, .q_proj, b.q_proj, dy: dq, x: s.h, dx: below, accumulate: true, s: s, T: T)
        linearBackward(l, .k_proj, b.k_proj, dy: dk, x: s.h, dx: below, accumulate: true, s: s, T: T)
        linearBackward(l, .v_proj, b.v_proj, dy: dv, x: s.h, dx: below, accumulate: true, s: s, T: T)
        guard below != nil else { return }
        // h = ln(x); the residual already carries dx
        bonsai_layernorm_backward(dx.pointer, dh.pointer, s.x.pointer, s.mean.pointer, s.rstd.pointer,
                                  b.input_layernorm_weight.pointer, Int64(T), Int64(d))
    }
}
