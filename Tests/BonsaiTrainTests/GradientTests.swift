import Bonsai
import BonsaiFormats
import BonsaiTrain
import CBonsai
import Foundation
import TestSupport
import XCTest

/// The training pass against the fixture's PEFT reference (train/): HF fp32 + lora/peft on a batch of
/// three SFT examples, loss = mean cross-entropy over the 46 answer tokens.
///
/// Tolerances. Our forward on the same fp32 weights matches transformers to ~1e-6 relative (LogitsTests),
/// so the loss agrees to ~1e-6 relative; we allow 1e-5. Gradients: the issue asks for relative error
/// ≤ 1e-4, measured per tensor as ‖g − g_ref‖ / ‖g_ref‖ (elementwise ratios are meaningless for entries
/// near zero).
final class GradientTests: XCTestCase {
    override func setUp() { bonsai_set_math(BONSAI_MATH_F32) }

    struct Batch { let tokens: [[Int]]; let targets: [[Int?]] }

    /// batch.safetensors: rows of input_ids / attention_mask / labels (-100 = no loss), right padded.
    static func batch() throws -> Batch {
        let st = try SafetensorsFile(path: try Fixtures.path("train/batch.safetensors"))
        let ids = try XCTUnwrap(st.tensor("input_ids")), mask = try XCTUnwrap(st.tensor("attention_mask")?.ints())
        let labels = try XCTUnwrap(st.tensor("labels")?.ints()), all = try XCTUnwrap(ids.ints())
        let (rows, seq) = (ids.rows, ids.cols)
        var tokens: [[Int]] = [], targets: [[Int?]] = []
        for r in 0 ..< rows {
            let n = mask[r * seq ..< (r + 1) * seq].reduce(0, +)
            tokens.append(Array(all[r * seq ..< r * seq + n]))
            // HF: logits[:, :-1] predict labels[:, 1:]
            targets.append((0 ..< n).map { t in t + 1 < seq && labels[r * seq + t + 1] != -100 ? labels[r * seq + t + 1] : nil })
        }
        return Batch(tokens: tokens, targets: targets)
    }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return (num / max(den, 1e-30)).squareRoot()
    }

    static func peftKey(_ l: Int, _ t: LoRATarget, _ half: String) -> String {
        "base_model.model.model.layers.\(l).\(t.hfModule).lora_\(half).weight"
    }

    func testInitialLossAndEveryGradientMatchPEFT() throws {
        for checkpointing in [false, true] {
            let m = try ModelLoader.load(path: try Fixtures.path("hf"))
            let adapter = try LoRAAdapter.load(path: try Fixtures.path("lora/peft"), config: m.model.config)
            let batch = try Self.batch()
            let ref = try Fixtures.json("train/train_reference.json")
            let total = batch.targets.flatMap { $0 }.compactMap { $0 }.count
            XCTAssertEqual(total, 46)
            let trainer = Phi2Training(model: m.model, adapter: adapter, maxTokens: 64, checkpointing: checkpointing)
            var lossSum = 0.0
            for (tokens, targets) in zip(batch.tokens, batch.targets) {
                lossSum += trainer.run(tokens: tokens, targets: targets, gradScale: 1 / Float(total))!.lossSum
            }
            let loss = lossSum / Double(total), refLoss = try XCTUnwrap(ref["initial_loss"] as? Double)
            print("checkpointing \(checkpointing): loss \(loss) vs \(refLoss)")
            XCTAssertEqual(loss, refLoss, accuracy: refLoss * 1e-5)

            let refGrads = try SafetensorsFile(path: try Fixtures.path("train/grads_step0.safetensors"))
            var worst = 0.0, worstName = "", checked = 0
            for l in 0 ..< m.model.config.num_hidden_layers {
                for t in LoRATarget.allCases {
                    let g = try XCTUnwrap(trainer.grads.pairs[l][t])
                    for (half, mine) in [("A", g.dA), ("B", g.dB)] {
                        let r = try XCTUnwrap(refGrads.floats(Self.peftKey(l, t, half)))
                        let e = Self.relativeError(mine.array, r)
                        checked += 1
                        if e > worst { (worst, worstName) = (e, Self.peftKey(l, t, half)) }
                    }
                }
            }
            print("checkpointing \(checkpointing): \(checked) gradients, worst relative error \(worst) (\(worstName))")
            XCTAssertEqual(checked, refGrads.names.count)
            XCTAssertLessThanOrEqual(worst, 1e-4)
        }
    }
}

/// Five torch.optim.AdamW steps (lr 1e-3) on the fixture batch: the loss before each step, the loss after
/// the last, and the final adapter weights. Tolerance: the step losses compound five updates whose
/// direction m/sqrt(v) is ±1-ish per weight at step 1 (sign of the gradient), so an f32 gradient
/// difference of ~1e-6 relative barely moves them; we allow 1e-5 relative on losses (measured 1e-7).
/// Weights: Adam's normalised step is ~lr per element whatever the gradient's size, so the few elements
/// whose gradient is near zero (1–4 of 2048 per tensor here) turn f32 noise into a visible difference.
/// We compare each tensor's 5-step update W5 − W0 as ‖Δ − Δ_ref‖ / ‖Δ_ref‖ ≤ 1e-3 (measured ≤ 2.7e-4; a
/// missing bias correction scales the first steps by up to 3×).
final class AdamWStepTests: XCTestCase {
    override func setUp() { bonsai_set_math(BONSAI_MATH_F32) }

    func testFiveAdamWStepsMatchTorch() throws {
        let m = try ModelLoader.load(path: try Fixtures.path("hf"))
        let adapter = try LoRAAdapter.load(path: try Fixtures.path("lora/peft"), config: m.model.config)
        let batch = try GradientTests.batch()
        let ref = try Fixtures.json("train/train_reference.json")
        let refLosses = try XCTUnwrap(ref["step_losses"] as? [Double]) + [try XCTUnwrap(ref["loss_after_final_step"] as? Double)]
        let total = batch.targets.flatMap { $0 }.compactMap { $0 }.count
        let trainer = Phi2Training(model: m.model, adapter: adapter, maxTokens: 64)
        let opt = AdamW(adapter: adapter, grads: trainer.grads, settings: .init(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0))
        var losses: [Double] = []
        for step in 0 ... 5 {
            trainer.grads.zero()
            var sum = 0.0
            for (tokens, targets) in zip(batch.tokens, batch.targets) {
                sum += trainer.run(tokens: tokens, targets: targets, gradScale: 1 / Float(total), backward: step < 5)!.lossSum
            }
            losses.append(sum / Double(total))
            if step < 5 { opt.update(lr: 1e-3) }
        }
        print("losses \(losses)\nreference \(refLosses)")
        for (a, b) in zip(losses, refLosses) { XCTAssertEqual(a, b, accuracy: b * 1e-5) }

        let final = try SafetensorsFile(path: try Fixtures.path("train/adapter_after_5_steps.safetensors"))
        let initial = try SafetensorsFile(path: try Fixtures.path("lora/peft/adapter_model.safetensors"))
        var worst = 0.0
        for l in 0 ..< m.model.config.num_hidden_layers {
            for t in LoRATarget.allCases {
                let p = try XCTUnwrap(adapter.pairs[l][t])
                for (half, mine) in [("A", p.A.array), ("B", p.B.array)] {
                    let key = GradientTests.peftKey(l, t, half)
                    let r = try XCTUnwrap(final.floats(key)), r0 = try XCTUnwrap(initial.floats(key))
                    let e = GradientTests.relativeError(zip(mine, r0).map { $0 - $1 }, zip(r, r0).map { $0 - $1 })
                    worst = max(worst, e)
                }
            }
        }
        print("final adapter: worst relative error of the 5-step update (W5 - W0) \(worst)")
        XCTAssertLessThanOrEqual(worst, 1e-3)
    }
}

/// --num-layers: blocks without an adapter run the inference forward and no backward. An adapter whose
/// layer-0 pairs have B = 0 computes the same function as one without layer-0 pairs, so layer 1's
/// gradients must agree between the two runs (the frozen path against the trainable one).
final class PartialLayerTests: XCTestCase {
    override func setUp() { bonsai_set_math(BONSAI_MATH_F32) }

    func testFrozenLowerBlocksGiveTheSameUpperGradients() throws {
        let m = try ModelLoader.load(path: try Fixtures.path("hf"))
        let c = m.model.config
        let full = try LoRAAdapter.load(path: try Fixtures.path("lora/peft"), config: c)
        for p in full.pairs[0].values { p.B.pointer.update(repeating: 0, count: p.B.count) }
        let upper = LoRAAdapter(rank: full.rank, alpha: full.alpha, pairs: [[:], full.pairs[1]])
        let batch = try GradientTests.batch()
        var grads: [[Float]] = []
        var losses: [Double] = []
        for adapter in [full, upper] {
            let pass = Phi2Training(model: m.model, adapter: adapter, maxTokens: 64)
            var loss = 0.0
            for (tokens, targets) in zip(batch.tokens, batch.targets) { loss += pass.run(tokens: tokens, targets: targets, gradScale: 1)!.lossSum }
            losses.append(loss)
            grads.append(LoRATarget.allCases.flatMap { pass.grads.pairs[1][$0]!.dA.array + pass.grads.pairs[1][$0]!.dB.array })
        }
        XCTAssertEqual(losses[0], losses[1], accuracy: losses[0] * 1e-6)
        let e = GradientTests.relativeError(grads[1], grads[0])
        print("upper-block gradients, frozen vs trainable lower block: relative difference \(e)")
        XCTAssertLessThanOrEqual(e, 1e-5)
    }
}
