import ArgumentParser
import Bonsai
import BonsaiFormats
import CBonsai
import Foundation

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "A GGUF file, or a Hugging Face folder (config.json + *.safetensors + tokenizer).")
    var model: String

    @Option(name: .long, help: ArgumentHelp("Re-encode f16/bf16/f32 weights while loading: q8_0 or q4_0 (safetensors models).",
                                            valueName: "type"))
    var quantize: String?

    @Option(name: [.short, .long], help: "Threads for the kernels (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: ArgumentHelp("A LoRA adapter applied at run time: a PEFT folder (adapter_config.json + adapter_model.safetensors) or a GGUF adapter.",
                                            valueName: "path"))
    var lora: String?

    @Option(name: .customLong("lora-scale"), help: "Multiply the adapter's effect (0: the base model, 1: as trained).")
    var loraScale: Float = 1

    @Flag(name: .customLong("f32-math"), help: "Dequantize weights to f32 and compute in f32 (slower; matches transformers on the same weights to ~1e-5). Default: int8 kernels, as llama.cpp.")
    var f32Math = false

    func load() throws -> LoadedModel {
        bonsai_set_math(f32Math ? BONSAI_MATH_F32 : BONSAI_MATH_FAST)
        if let t = threads {
            guard t >= 1 else { throw ValidationError("--threads must be at least 1") }
            bonsai_set_threads(Int32(t))
        }
        let loaded = try ModelLoader.load(path: model, options: try loaderOptions(quantize: quantize))
        if let lora {
            guard loraScale.isFinite else { throw ValidationError("--lora-scale must be a number") }
            let adapter = try LoRAAdapter.load(path: lora, config: loaded.model.config)
            adapter.userScale = loraScale
            loaded.model.adapter = adapter
        } else if loraScale != 1 {
            throw ValidationError("--lora-scale needs --lora")
        }
        return loaded
    }
}

/// ModelLoader options from a --quantize value (the types load-time quantization offers).
func loaderOptions(quantize: String?) throws -> ModelLoader.Options {
    guard let q = quantize else { return ModelLoader.Options() }
    guard let type = TensorType(name: q), type == .q8_0 || type == .q4_0 else {
        throw ValidationError("--quantize takes q8_0 or q4_0, not \(q)")
    }
    return ModelLoader.Options(quantize: type)
}

/// Context and batching.
struct ContextOptions: ParsableArguments {
    @Option(name: [.short, .customLong("ctx-size")], help: "Context length in tokens (default: the model's, 2048 for PHI-2).")
    var ctxSize: Int?

    @Option(name: [.short, .customLong("batch-size")], help: "Prompt tokens per forward pass.")
    var batchSize: Int = 512

    func session(for loaded: LoadedModel) throws -> Session {
        let n = ctxSize ?? loaded.model.config.max_position_embeddings
        guard n >= 1, n <= 1 << 20 else { throw ValidationError("--ctx-size must be between 1 and 1048576") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        return try Session(loaded, nCtx: n, batchSize: batchSize)
    }
}

/// How tokens are picked. Names and defaults follow llama.cpp.
struct SamplingOptions: ParsableArguments {
    @Option(name: .long, help: "Temperature; 0 picks the most likely token every time (greedy, deterministic).")
    var temp: Float = 0.8

    @Option(name: .customLong("top-k"), help: "Keep only the k most likely tokens (0: off).")
    var topK: Int = 40

    @Option(name: .customLong("top-p"), help: "Keep the most likely tokens whose probabilities add up to p (1: off).")
    var topP: Float = 0.95

    @Option(name: .customLong("min-p"), help: "Drop tokens less likely than min-p × the most likely one (0: off).")
    var minP: Float = 0.05

    @Option(name: .customLong("repeat-penalty"), help: "Penalise tokens seen in the last --repeat-last-n tokens (1: off).")
    var repeatPenalty: Float = 1.0

    @Option(name: .customLong("repeat-last-n"), help: "How many recent tokens the repeat penalty looks at.")
    var repeatLastN: Int = 64

    @Option(name: .long, help: "Random seed: the same seed and options give the same text.")
    var seed: UInt64 = 0x5EED

    @Option(name: [.short, .customLong("n-predict")], help: "Most tokens to generate.")
    var nPredict: Int = 256

    @Option(name: .long, help: "Stop when the model writes this text (repeatable). <|endoftext|> always stops.")
    var stop: [String] = []

    func settings() throws -> SamplerSettings {
        guard temp >= 0 else { throw ValidationError("--temp must be ≥ 0") }
        guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard minP >= 0, minP < 1 else { throw ValidationError("--min-p must be in [0, 1)") }
        guard repeatPenalty > 0 else { throw ValidationError("--repeat-penalty must be > 0") }
        guard repeatLastN >= 0 else { throw ValidationError("--repeat-last-n must be ≥ 0") }
        guard nPredict >= 0 else { throw ValidationError("--n-predict must be ≥ 0") }
        var s = SamplerSettings()
        s.temperature = temp
        s.topK = topK
        s.topP = topP
        s.minP = minP
        s.repeatPenalty = repeatPenalty
        s.repeatLastN = repeatLastN
        s.seed = seed
        return s
    }
}

/// Runs a command body, turning our errors into one line on stderr and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ValidationError {
        throw e
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("bonsai: error: \(FormatError.oneLine("\(error)"))\n".utf8))
        throw ExitCode(1)
    }
}

func printErr(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// Writes text to stdout immediately (streaming).
func emit(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}
