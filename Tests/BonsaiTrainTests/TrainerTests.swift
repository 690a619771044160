import Bonsai
import BonsaiFormats
import BonsaiTrain
import CBonsai
import Foundation
import TestSupport
import XCTest

final class TrainerTests: XCTestCase {
    override func setUp() { bonsai_set_math(BONSAI_MATH_F32) }

    static func data() throws -> String {
        let lines = [
            #"{"instruction": "What is the boiling point of water at sea level?", "response": "100 degrees Celsius."}"#,
            #"{"instruction": "Give two reasons why people keep a diary.", "reasoning": "Memory and reflection.", "response": "To remember and to reflect."}"#,
            #"{"prompt": "日本の首都はどこですか？", "completion": "東京です。"}"#,
            #"{"messages": [{"role": "user", "content": "中国的首都是哪里？"}, {"role": "assistant", "content": "北京。"}]}"#,
            #"{"text": "def add(a, b):\n    return a + b\n"}"#,
        ]
        let p = Fixtures.temporaryPath("trainer-data.jsonl")
        try lines.joined(separator: "\n").write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func makeTrainer(_ c: TrainConfig) throws -> Trainer {
        let m = try ModelLoader.load(path: try Fixtures.path("hf"))
        let d = try Dataset(path: try Self.data(), tokenizer: m.tokenizer, maxTokens: c.maxSeqLen)
        return try Trainer(config: c, model: m.model, adapter: Trainer.freshAdapter(config: m.model.config, c), train: d, valid: d)
    }

    func config(_ dir: String) -> TrainConfig {
        var c = TrainConfig()
        c.adapterPath = Fixtures.temporaryPath(dir)
        try? FileManager.default.removeItem(atPath: c.adapterPath)
        c.iters = 6
        c.batchSize = 2
        c.learningRate = 1e-3
        c.lrSchedule = .cosine
        c.warmup = 2
        c.dropout = 0.1
        c.weightDecay = 0.01
        c.saveEvery = 0
        c.stepsPerEval = 3
        c.seed = 7
        return c
    }

    /// Ctrl-C in the middle of step 4, then --resume: the loss curve and the final adapter equal those of an
    /// uninterrupted run bit for bit (same data order, dropout masks and optimizer state).
    func testInterruptedAndResumedRunEqualsUninterruptedRun() throws {
        let whole = try makeTrainer(config("run-whole"))
        var wholeLosses: [Double] = []
        XCTAssertEqual(try whole.run(shouldStop: { false }) { if case let .step(r) = $0 { wholeLosses.append(r.loss) } }, .finished)

        let c = config("run-split")
        let first = try makeTrainer(c)
        var losses: [Double] = [], checks = 0
        let outcome = try first.run(shouldStop: {   // stop inside step 4, a few blocks into its first sequence
            if losses.count == 3 { checks += 1 }
            return checks == 3
        }) {
            if case let .step(r) = $0 { losses.append(r.loss) }
        }
        XCTAssertEqual(outcome, .interrupted)
        XCTAssertEqual(first.step, 3)
        let cp = try XCTUnwrap(Checkpoint.latest(adapterPath: c.adapterPath))
        XCTAssertEqual(cp.step, 3)

        let second = try makeTrainer(c)
        try second.resume(from: cp)
        XCTAssertEqual(try second.run(shouldStop: { false }) { if case let .step(r) = $0 { losses.append(r.loss) } }, .finished)
        XCTAssertEqual(losses, wholeLosses)
        XCTAssertLessThan(wholeLosses.last!, wholeLosses.first!)
        for (l, layer) in whole.adapter.pairs.enumerated() {
            for (t, p) in layer {
                XCTAssertEqual(second.adapter.pairs[l][t]!.A.array, p.A.array)
                XCTAssertEqual(second.adapter.pairs[l][t]!.B.array, p.B.array)
            }
        }
        // a different setting refuses to resume
        var other = c
        other.rank = 4
        XCTAssertThrowsError(try makeTrainer(other).resume(from: cp)) { XCTAssertTrue("\($0)".contains("rank"), "\($0)") }
    }

    /// The backward pass with dropout and recomputation, checked against the loss itself: along the
    /// gradient direction g, (L(θ + εĝ) − L(θ − εĝ)) / 2ε must equal ‖g‖. With ε = 0.01 the central
    /// difference's own error (f32 loss noise ~1e-5 / 2ε, plus O(ε²) curvature) is ~2e-4 of ‖g‖; we allow
    /// 1e-3 (measured 9e-6). A dropout mask that differed between forward and backward would be off by ~20%.
    func testGradientMatchesFiniteDifferenceWithDropoutAndRecomputation() throws {
        let m = try ModelLoader.load(path: try Fixtures.path("hf"))
        let adapter = try LoRAAdapter.load(path: try Fixtures.path("lora/peft"), config: m.model.config)
        let batch = try GradientTests.batch()
        let pass = Phi2Training(model: m.model, adapter: adapter, maxTokens: 64, checkpointing: true, dropout: 0.2)
        let total = batch.targets.flatMap { $0 }.compactMap { $0 }.count
        func loss(backward: Bool) -> Double {
            var s = 0.0
            for (i, (tokens, targets)) in zip(batch.tokens, batch.targets).enumerated() {
                s += pass.run(tokens: tokens, targets: targets, gradScale: 1 / Float(total), backward: backward,
                              dropoutSeed: UInt64(100 + i))!.lossSum
            }
            return s / Double(total)
        }
        pass.grads.zero()
        _ = loss(backward: true)
        var params: [(FloatBuffer, [Float])] = []
        var norm2 = 0.0
        for (l, layer) in adapter.pairs.enumerated() {
            for (t, p) in layer {
                let g = pass.grads.pairs[l][t]!
                params.append((p.A, g.dA.array))
                params.append((p.B, g.dB.array))
                norm2 += g.dA.array.reduce(0) { $0 + Double($1 * $1) } + g.dB.array.reduce(0) { $0 + Double($1 * $1) }
            }
        }
        let norm = norm2.squareRoot(), eps = 1e-2
        func shift(_ s: Double) {
            for (p, g) in params { for i in 0 ..< p.count { p[i] += Float(s * Double(g[i]) / norm) } }
        }
        shift(eps); let plus = loss(backward: false)
        shift(-2 * eps); let minus = loss(backward: false)
        shift(eps)
        let fd = (plus - minus) / (2 * eps)
        print("‖g‖ \(norm), finite difference \(fd)")
        XCTAssertEqual(fd, norm, accuracy: norm * 1e-3)
    }

    /// A diverging run stops with a one-line error instead of writing NaN weights.
    func testNonFiniteLossStopsTheRun() throws {
        var c = config("run-diverge")
        c.learningRate = 1e30
        c.dropout = 0
        c.iters = 4
        let t = try makeTrainer(c)
        XCTAssertThrowsError(try t.run(shouldStop: { false })) { XCTAssertTrue("\($0)".contains("not finite"), "\($0)") }
        XCTAssertLessThan(t.step, 4)
    }

    /// A config file's integers: 3.0 is 3; 2.5 and 1e300 are errors (1e300 trapped in Int(Double)).
    func testConfigIntegersMustBeWhole() throws {
        var c = TrainConfig()
        try c.set("iters", 3.0, file: "train.yaml")
        XCTAssertEqual(c.iters, 3)
        for v in [2.5, 1e300, -1e300] {
            XCTAssertThrowsError(try c.set("iters", v, file: "train.yaml"), "\(v)") { XCTAssertTrue("\($0)".contains("train.yaml"), "\($0)") }
        }
    }
}
