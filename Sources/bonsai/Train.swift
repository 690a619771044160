import ArgumentParser
import Bonsai
import BonsaiFormats
import BonsaiTokenizer
import BonsaiTrain
import CBonsai
import Foundation

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune PHI-2 with LoRA on your JSONL data; the base stays frozen in its quantized form.",
        discussion: """
        Data: a folder with train.jsonl (and optionally valid.jsonl), one example per line, in any of:
          {"instruction": …, "input": …, "reasoning": …, "response": …}   ("output" works for "response")
          {"prompt": …, "completion": …}
          {"messages": [{"role": "system"|"user"|"assistant", "content": …}, …]}
          {"text": …}
        Each is written in PHI-2's QA format, "Instruct: {instruction}\\nOutput: {reasoning}\\n\\n{response}<|endoftext|>", \
        and the loss covers the answer (reasoning, response, <|endoftext|>) only; --no-mask-prompt trains on \
        everything. See how a line is rendered with --show-example.

          bonsai train --model phi-2.Q4_0.gguf --data data/ --adapter-path adapters/ --iters 200
          bonsai train --config train.yaml --learning-rate 2e-4      (flags override the file)
          bonsai train --config train.yaml --resume                   (after Ctrl-C; --resume-from picks a checkpoint)

        The adapter folder receives adapter_config.json + adapter_model.safetensors (PEFT: \
        PeftModel.from_pretrained loads it), adapter.gguf (llama.cpp: --lora), metrics.jsonl, and \
        checkpoints/step-N/ every --save-every steps. Ctrl-C stops within a block's worth of work, drops the \
        unfinished step and writes a checkpoint of the last finished one; --resume continues with the same \
        data order and random state, so the loss curve is the one an uninterrupted run draws.
        Then: bonsai chat -m <base> --lora <adapter-path>, or bonsai export to merge.
        """)

    @Option(name: [.short, .long], help: "Base model: a GGUF file of any supported type or a Hugging Face folder.")
    var model: String?
    @Option(name: .long, help: "A folder with train.jsonl [valid.jsonl], or one .jsonl file.")
    var data: String?
    @Option(name: .customLong("adapter-path"), help: "Where the adapter, checkpoints and metrics go (default: adapters).")
    var adapterPath: String?
    @Option(name: .long, help: "YAML or JSON file with any of these options (snake_case or kebab-case keys).")
    var config: String?

    @Option(name: .long, help: "LoRA rank r (default 8).") var rank: Int?
    @Option(name: .long, help: "LoRA alpha; the update is scaled by alpha / r (default 16).") var alpha: Float?
    @Option(name: .long, help: "Dropout on the adapters' inputs (default 0).") var dropout: Float?
    @Flag(name: .customLong("rslora"), help: "Scale by alpha / sqrt(r) (rank-stabilised LoRA).") var rslora = false
    @Option(name: .long, help: "Layers to adapt, comma-separated, HF or GGUF names (default q_proj,k_proj,v_proj,dense,fc1,fc2).")
    var targets: String?
    @Option(name: .customLong("num-layers"), help: "Adapt only the last N blocks (-1: all, the default).") var numLayers: Int?

    @Option(name: .customLong("learning-rate"), help: "Peak learning rate (default 1e-4).") var learningRate: Float?
    @Option(name: .customLong("lr-schedule"), help: "constant or cosine (decays to 0 at the last step).") var lrSchedule: String?
    @Option(name: .long, help: "Linear warmup steps (default 0).") var warmup: Int?
    @Option(name: .customLong("weight-decay"), help: "AdamW weight decay (default 0).") var weightDecay: Float?
    @Option(name: .customLong("beta1"), help: "AdamW beta1 (default 0.9).") var beta1: Float?
    @Option(name: .customLong("beta2"), help: "AdamW beta2 (default 0.999).") var beta2: Float?

    @Option(name: .customLong("batch-size"), help: "Examples per batch; the loss is the mean over their answer tokens (default 4).")
    var batchSize: Int?
    @Option(name: .customLong("grad-accum"), help: "Batches per optimizer step (default 1).") var gradAccum: Int?
    @Option(name: .customLong("max-seq-len"), help: "Longer examples are cut to this many tokens and counted (default 512).")
    var maxSeqLen: Int?
    @Option(name: .long, help: "Optimizer steps (default: one epoch).") var iters: Int?
    @Option(name: .long, help: "Passes over the data, instead of --iters.") var epochs: Double?
    @Option(name: .long, help: "Seed for the adapter's initialisation, data order and dropout (default 0).") var seed: UInt64?
    @Option(name: .customLong("steps-per-eval"), help: "Validation loss every N steps (0: at the end only; default 100).")
    var stepsPerEval: Int?
    @Option(name: .customLong("val-examples"), help: "Validation examples per evaluation (default: all).") var valExamples: Int?
    @Option(name: .customLong("save-every"), help: "Checkpoint every N steps (0: at the end and on Ctrl-C; default 100).")
    var saveEvery: Int?
    @Flag(name: .customLong("grad-checkpoint"), help: "Recompute activations in the backward pass: far less memory, ~30% more time.")
    var gradCheckpoint = false
    @Option(name: [.short, .long], help: "Threads (default: all cores).") var threads: Int?
    @Flag(name: .customLong("no-mask-prompt"), help: "Train on the prompt tokens too.") var noMaskPrompt = false
    @Flag(name: .customLong("skip-bad"), help: "Skip (and count) malformed JSONL lines instead of stopping at the first.")
    var skipBad = false
    @Flag(name: .long, help: "Continue from the newest checkpoint in --adapter-path.") var resume = false
    @Option(name: .customLong("resume-from"), help: "Continue from this checkpoint folder (checkpoints/step-N) instead of the newest.")
    var resumeFrom: String?
    @Flag(name: .customLong("show-example"), help: "Print how the first training example is rendered and masked, then exit.")
    var showExample = false
    @Flag(name: .customLong("f32-math"), help: "Exact f32 forward (slower); default: int8 kernels for the frozen base.")
    var f32Math = false
    @Option(name: .long, help: ArgumentHelp("Quantize an f16/bf16/f32 base (an HF folder) while loading: q8_0 or q4_0, so a 5.6 GB download trains in ~1.6 GB.",
                                            valueName: "type"))
    var quantize: String?

    /// Config file, then flags on top.
    func settings() throws -> TrainConfig {
        var c = TrainConfig()
        if let config { try c.load(file: config) }
        if let model { c.model = model }
        if let data { c.data = data }
        if let adapterPath { c.adapterPath = adapterPath }
        if let rank { c.rank = rank }
        if let alpha { c.alpha = alpha }
        if let dropout { c.dropout = dropout }
        if rslora { c.useRSLoRA = true }
        if let targets { c.targets = try TrainConfig.parseTargets(targets) }
        if let numLayers { c.numLayers = numLayers < 0 ? nil : numLayers }
        if let learningRate { c.learningRate = learningRate }
        if let lrSchedule {
            guard let k = LRSchedule.Kind(rawValue: lrSchedule) else { throw ValidationError("--lr-schedule is constant or cosine") }
            c.lrSchedule = k
        }
        if let warmup { c.warmup = warmup }
        if let weightDecay { c.weightDecay = weightDecay }
        if let beta1 { c.beta1 = beta1 }
        if let beta2 { c.beta2 = beta2 }
        if let batchSize { c.batchSize = batchSize }
        if let gradAccum { c.gradAccum = gradAccum }
        if let maxSeqLen { c.maxSeqLen = maxSeqLen }
        if let iters { c.iters = iters; if c.epochs != nil && epochs == nil { c.epochs = nil } }
        if let epochs { c.epochs = epochs; if c.iters != nil && iters == nil { c.iters = nil } }
        if let seed { c.seed = seed }
        if let stepsPerEval { c.stepsPerEval = stepsPerEval }
        if let valExamples { c.valExamples = valExamples }
        if let saveEvery { c.saveEvery = saveEvery }
        if gradCheckpoint { c.gradCheckpoint = true }
        if let threads { c.threads = threads }
        if noMaskPrompt { c.maskPrompt = false }
        if skipBad { c.skipBad = true }
        try c.validate()
        guard c.model != nil else { throw ValidationError("--model is required (or `model:` in --config)") }
        guard c.data != nil else { throw ValidationError("--data is required (or `data:` in --config)") }
        return c
    }

    func run() throws {
        try reportingErrors {
            let c = try settings()
            bonsai_set_math(f32Math ? BONSAI_MATH_F32 : BONSAI_MATH_FAST)
            if let t = c.threads { bonsai_set_threads(Int32(t)) }
            let files = try Dataset.files(in: c.data!)

            if showExample {
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: c.model!, isDirectory: &isDir) else {
                    throw ValidationError("\(c.model!): no such file or folder")
                }
                let tokenizer = isDir.boolValue ? try Tokenizer(hfRepo: c.model!) : try Tokenizer(gguf: GGUFFile(path: c.model!))
                try ShowExample.print(file: files.train, tokenizer: tokenizer, config: c)
                return
            }
            let checkpoint = try resumeFrom.map { try Checkpoint(path: $0) } ?? Checkpoint.latest(adapterPath: c.adapterPath)
            if resume, checkpoint == nil {
                throw TrainError.option("--resume: no checkpoint in \(Checkpoint.folder(adapterPath: c.adapterPath))")
            }
            let loaded = try ModelLoader.load(path: c.model!, options: try loaderOptions(quantize: quantize))
            let train = try Dataset(path: files.train, tokenizer: loaded.tokenizer, maxTokens: c.maxSeqLen,
                                    maskPrompt: c.maskPrompt, skipBad: c.skipBad)
            let valid = try files.valid.map {
                try Dataset(path: $0, tokenizer: loaded.tokenizer, maxTokens: c.maxSeqLen, maskPrompt: c.maskPrompt, skipBad: c.skipBad)
            }
            for d in [train] + (valid.map { [$0] } ?? []) {
                printErr("\(d.path): \(d.examples.count) examples, \(d.targetTokens) answer tokens"
                    + (d.truncated > 0 ? ", \(d.truncated) cut to --max-seq-len \(c.maxSeqLen)" : "")
                    + (d.dropped > 0 ? ", \(d.dropped) left out (no answer within --max-seq-len)" : "")
                    + (d.badLines > 0 ? ", \(d.badLines) bad lines skipped" : ""))
            }
            let adapter = Trainer.freshAdapter(config: loaded.model.config, c)
            let trainer = try Trainer(config: c, model: loaded.model, adapter: adapter, train: train, valid: valid)
            try FileManager.default.createDirectory(atPath: c.adapterPath, withIntermediateDirectories: true)
            if resume || resumeFrom != nil, let cp = checkpoint {
                try trainer.resume(from: cp)
                printErr("resumed from \(cp.path) (step \(cp.step))")
            }
            let metrics = try MetricsLog(path: c.adapterPath + "/metrics.jsonl", keepThrough: trainer.step)
            printErr("training \(adapter.parameterCount) LoRA parameters (rank \(c.rank), \(c.targets.map(\.rawValue).joined(separator: ",")), "
                + "\(adapter.pairs.filter { !$0.isEmpty }.count) of \(loaded.model.config.num_hidden_layers) blocks) on \(loaded.formatDescription); "
                + "\(trainer.totalSteps) steps of \(c.batchSize * c.gradAccum) examples")
            bonsai_interrupt_install()
            let line = ProgressLine()
            var lastVal: Double? = nil
            let outcome = try trainer.run(report: { event in
                switch event {
                case let .step(r):
                    metrics.append(["step": r.step, "loss": r.loss, "lr": Double("\(r.lr)") ?? Double(r.lr), "tokens": r.tokens,
                                    "tokens_per_s": r.tokensPerSecond, "elapsed_s": r.elapsed])
                    line.show(String(format: "step %d/%d  loss %.4f%@  lr %.2e  %.0f tok/s  ETA %@", r.step, r.totalSteps, r.loss,
                                     lastVal.map { String(format: "  val %.4f", $0) } ?? "", Double(r.lr),
                                     r.tokensPerSecond, ProgressLine.duration(r.eta)))
                case let .validation(step, loss, tokens):
                    lastVal = loss
                    metrics.append(["step": step, "val_loss": loss, "val_tokens": tokens])
                    line.finish(String(format: "step %d: validation loss %.4f (perplexity %.2f) over %d tokens", step, loss, exp(loss), tokens))
                case let .checkpoint(cp):
                    line.finish("checkpoint \(cp.path)")
                }
            })
            if outcome == .interrupted {
                line.finish("interrupted at step \(trainer.step); continue with the same command plus --resume")
                throw ExitCode(130)
            }
            try trainer.writeAdapter(name: URL(fileURLWithPath: c.adapterPath).lastPathComponent)
            line.finish("adapter written to \(c.adapterPath) (PEFT: adapter_config.json + adapter_model.safetensors; llama.cpp: adapter.gguf)")
        }
    }
}

/// `--show-example`: the first training line rendered, with the answer part marked and token counts.
enum ShowExample {
    static func print(file: String, tokenizer: Tokenizer, config c: TrainConfig) throws {
        let d = try Dataset(path: file, tokenizer: tokenizer, maxTokens: c.maxSeqLen, maskPrompt: c.maskPrompt, skipBad: c.skipBad)
        let e = d.examples[0]
        var out = "", inAnswer = false
        for (id, trained) in zip(e.tokens, e.trained) {
            if trained != inAnswer { out += trained ? "[[" : "]]"; inAnswer = trained }
            out += tokenizer.decode([id], special: true)
        }
        if inAnswer { out += "]]" }
        emit("\(file), first example (\(e.tokens.count) tokens, \(e.targetCount) in the loss, marked [[ ]]):\n\(out)\n")
    }
}
