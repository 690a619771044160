import Bonsai
import BonsaiFormats
import CBonsai
import Foundation

/// The training loop: batches in a seeded order, gradient accumulation, AdamW with a schedule, periodic
/// validation, checkpoints, metrics, and a clean stop on Ctrl-C. Everything that decides the numbers is
/// derived from (config, step), so a resumed run continues exactly where the interrupted one stopped.
public final class Trainer {
    public let config: TrainConfig
    public let model: Phi2
    public let adapter: LoRAAdapter
    public let train: Dataset
    public let valid: Dataset?
    public let totalSteps: Int
    public private(set) var step = 0
    let pass: Phi2Training
    let optimizer: AdamW
    let schedule: LRSchedule
    private var permutations: [Int: [Int]] = [:]

    public struct StepReport: Sendable {
        public let step: Int, totalSteps: Int
        public let loss: Double
        public let lr: Float
        public let tokens: Int
        public let tokensPerSecond: Double
        public let elapsed: Double
        public var eta: Double { elapsed / Double(max(step, 1)) * Double(totalSteps - step) }
    }

    public enum Event {
        case step(StepReport)
        case validation(step: Int, loss: Double, tokens: Int)
        case checkpoint(Checkpoint)
    }

    public enum Outcome: Equatable { case finished, interrupted }

    /// A fresh adapter as PEFT initialises one: A ~ U(−1/√in, 1/√in), B = 0 (so training starts from the base).
    public static func freshAdapter(config c: Phi2Config, _ t: TrainConfig) -> LoRAAdapter {
        var rng = SplitMix64(seed: t.seed ^ 0x5EED_1A0A)
        let first = t.numLayers.map { max(0, c.num_hidden_layers - $0) } ?? 0
        let pairs = (0 ..< c.num_hidden_layers).map { l -> [LoRATarget: LoRAPair] in
            guard l >= first else { return [:] }
            var layer: [LoRATarget: LoRAPair] = [:]
            for target in t.targets {
                let (inF, outF) = target.shape(c)
                let bound = 1 / Float(inF).squareRoot()
                let a = FloatBuffer(count: t.rank * inF)
                for i in 0 ..< a.count { a[i] = (Float(rng.next() >> 40) / Float(1 << 24) * 2 - 1) * bound }
                layer[target] = LoRAPair(rank: t.rank, inFeatures: inF, outFeatures: outF, A: a, B: FloatBuffer(count: outF * t.rank))
            }
            return layer
        }
        return LoRAAdapter(rank: t.rank, alpha: t.alpha, useRSLoRA: t.useRSLoRA, pairs: pairs)
    }

    public init(config: TrainConfig, model: Phi2, adapter: LoRAAdapter, train: Dataset, valid: Dataset?) throws {
        try config.validate()
        self.config = config
        self.model = model
        self.adapter = adapter
        self.train = train
        self.valid = valid
        let perStep = config.batchSize * config.gradAccum
        if let iters = config.iters {
            totalSteps = iters
        } else {
            totalSteps = max(1, Int((Double(train.examples.count) * (config.epochs ?? 1) / Double(perStep)).rounded(.up)))
        }
        let longest = max(train.examples.map(\.tokens.count).max() ?? 1, valid?.examples.map(\.tokens.count).max() ?? 1)
        pass = Phi2Training(model: model, adapter: adapter, maxTokens: longest, checkpointing: config.gradCheckpoint,
                            dropout: config.dropout)
        optimizer = AdamW(adapter: adapter, grads: pass.grads, settings: .init(beta1: config.beta1, beta2: config.beta2,
                                                                              eps: config.eps, weightDecay: config.weightDecay))
        schedule = LRSchedule(kind: config.lrSchedule, peak: config.learningRate, warmup: config.warmup, total: totalSteps)
    }

    /// Continue from a checkpoint of a run with the same settings and data.
    public func resume(from cp: Checkpoint) throws {
        let state = try cp.state()
        let saved = state["fingerprint"] as? [String: String] ?? [:]
        let mine = config.fingerprint
        if let key = mine.keys.sorted().first(where: { saved[$0] != mine[$0] }) {
            throw TrainError.checkpoint("\(cp.path) was made with \(key) = \(saved[key] ?? "?"), this run has \(mine[key]!); resume with the same settings")
        }
        if let n = state["train_examples"] as? Int, n != train.examples.count {
            throw TrainError.checkpoint("\(cp.path) was trained on \(n) examples, the data now has \(train.examples.count)")
        }
        try cp.restore(into: adapter, optimizer: optimizer, config: model.config)
        step = cp.step
    }

    /// Indices into train.examples for optimizer step s: a seeded shuffle per epoch, read in order.
    public func batch(forStep s: Int) -> [Int] {
        let n = train.examples.count, per = config.batchSize * config.gradAccum
        return (0 ..< per).map { k in
            let p = s * per + k, epoch = p / n
            if permutations[epoch] == nil {
                permutations = permutations.filter { $0.key >= epoch - 1 }
                var order = Array(0 ..< n)
                var rng = SplitMix64(seed: config.seed &+ UInt64(epoch + 1) &* 0x9E37_79B9_7F4A_7C15)
                for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                permutations[epoch] = order
            }
            return permutations[epoch]![p % n]
        }
    }

    /// Mean cross-entropy over the answer tokens of the validation set (or its first valExamples).
    public func validationLoss(shouldStop: @escaping () -> Bool = { false }) -> (loss: Double, tokens: Int)? {
        guard let valid else { return nil }
        var sum = 0.0, count = 0
        for e in valid.examples.prefix(config.valExamples ?? valid.examples.count) {
            pass.abort = shouldStop
            defer { pass.abort = { false } }
            guard let r = pass.run(tokens: e.tokens, targets: e.targets, gradScale: 0, backward: false) else { return nil }
            sum += r.lossSum
            count += r.count
        }
        return count > 0 ? (sum / Double(count), count) : nil
    }

    /// Runs until totalSteps or until shouldStop() (polled before every block of every sequence) says stop;
    /// then writes a checkpoint of the last completed step. Returns how it ended.
    public func run(shouldStop: @escaping () -> Bool = { bonsai_interrupt_pending() },
                    report: (Event) -> Void = { _ in }) throws -> Outcome {
        let start = Date()
        var tokensDone = 0, lastSaved = step
        let baseModel = config.model ?? ""
        func save() throws {
            let cp = try Checkpoint.write(adapter: adapter, optimizer: optimizer, step: step, state: [
                "fingerprint": config.fingerprint, "train_examples": train.examples.count, "total_steps": totalSteps,
            ], adapterPath: config.adapterPath, baseModel: baseModel, dropout: config.dropout)
            lastSaved = step
            report(.checkpoint(cp))
        }
        pass.abort = shouldStop
        defer { pass.abort = { false } }
        while step < totalSteps {
            let indices = batch(forStep: step)
            let examples = indices.map { train.examples[$0] }
            let total = examples.reduce(0) { $0 + $1.targetCount }
            pass.grads.zero()
            var lossSum = 0.0, stopped = false
            for (k, e) in examples.enumerated() {
                let seed = config.seed &+ UInt64(step) &* 0x1000_0000_01B3 &+ UInt64(k)
                guard let r = pass.run(tokens: e.tokens, targets: e.targets, gradScale: 1 / Float(total), dropoutSeed: seed) else {
                    stopped = true
                    break
                }
                lossSum += r.lossSum
                tokensDone += e.tokens.count
            }
            if stopped {   // the partial step is dropped: the state stays that of the last completed step
                if step > lastSaved || Checkpoint.latest(adapterPath: config.adapterPath) == nil { try save() }
                return .interrupted
            }
            guard lossSum.isFinite else {   // a diverged step must not reach the weights or a checkpoint
                throw TrainError.option("the loss is not finite at step \(step + 1) (learning rate \(schedule.lr(at: step)) too high?); the last checkpoint is intact")
            }
            let lr = schedule.lr(at: step)
            optimizer.update(lr: lr)
            step += 1
            let elapsed = Date().timeIntervalSince(start)
            report(.step(StepReport(step: step, totalSteps: totalSteps, loss: lossSum / Double(max(total, 1)), lr: lr,
                                    tokens: examples.reduce(0) { $0 + $1.tokens.count },
                                    tokensPerSecond: Double(tokensDone) / max(elapsed, 1e-9), elapsed: elapsed)))
            if valid != nil, (config.stepsPerEval > 0 && step % config.stepsPerEval == 0) || step == totalSteps {
                guard let v = validationLoss(shouldStop: shouldStop) else { try save(); return .interrupted }
                report(.validation(step: step, loss: v.loss, tokens: v.tokens))
            }
            if config.saveEvery > 0 && step % config.saveEvery == 0 || step == totalSteps { try save() }
        }
        return .finished
    }

    /// The finished adapter in the adapter folder: PEFT files (adapter_config.json, adapter_model.safetensors)
    /// and adapter.gguf for llama.cpp's --lora.
    public func writeAdapter(name: String) throws {
        try AdapterWriter.writePEFT(adapter, to: config.adapterPath, baseModel: config.model ?? "", dropout: config.dropout)
        try AdapterWriter.writeGGUF(adapter, to: config.adapterPath + "/adapter.gguf", name: name)
    }
}
