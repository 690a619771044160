import ArgumentParser
import Bonsai
import BonsaiTrain
import Foundation

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge a LoRA adapter into its base and write the result as a GGUF or a Hugging Face folder.",
        discussion: """
        Every adapted weight becomes W + (alpha / r) · B A, computed in f32 from the exactly dequantized \
        base weight and re-quantized to that tensor's own type (or --type for all); the other tensors are \
        copied as they are. The result needs no adapter: llama.cpp, transformers and bonsai run it directly.

          bonsai export -m phi-2.Q4_K_M.gguf --lora adapters/ --out phi-2-tuned.Q4_K_M.gguf
          bonsai export -m models/phi-2 --lora adapters/ --out phi-2-tuned.f16.gguf --type f16
          bonsai export -m models/phi-2 --lora adapters/ --out models/phi-2-tuned       (HF folder)

        An --out ending in .gguf writes a GGUF; anything else an HF folder (--dtype F16|BF16|F32; default the \
        HF base's dtype, or F16 from a GGUF base, whose config.json and tokenizer files are written from the \
        GGUF's metadata). Files are written atomically.
        """)

    @Option(name: [.short, .long], help: "The base model: a GGUF file or a Hugging Face folder.") var model: String
    @Option(name: .long, help: "The adapter: a PEFT folder or a GGUF adapter.") var lora: String
    @Option(name: .long, help: "Output: a .gguf file, or a folder for Hugging Face safetensors.") var out: String
    @Option(name: .long, help: "GGUF type for the whole file (f16, q8_0, q4_0, q4_k_m, …; default: the base's own types).")
    var type: String?
    @Option(name: .long, help: "HF folder dtype: F16, BF16 or F32 (default: the base's).") var dtype: String?
    @Option(name: .customLong("lora-scale"), help: "Multiply the adapter before merging (default 1).") var loraScale: Float = 1

    func run() throws {
        try reportingErrors {
            guard out != model else { throw ValidationError("--out must differ from --model") }
            let config = try Phi2Config.load(path: model)
            let adapter = try LoRAAdapter.load(path: lora, config: config)
            adapter.userScale = loraScale
            let bar = ProgressBar(label: "export")
            if out.hasSuffix(".gguf") {
                guard dtype == nil else { throw ValidationError("--dtype is for HF folder output; use --type for a GGUF") }
                let scheme = try type.map { t -> QuantScheme in
                    guard let s = QuantScheme(name: t) else {
                        throw ValidationError("--type must be one of \(QuantScheme.names)")
                    }
                    return s
                }
                try Merge.toGGUF(base: model, adapter: adapter, output: out, scheme: scheme, progress: bar.update)
            } else {
                guard type == nil else { throw ValidationError("--type is for GGUF output (an --out ending in .gguf); use --dtype for a folder") }
                try Merge.toHF(base: model, adapter: adapter, output: out, dtype: dtype?.uppercased(), progress: bar.update)
            }
            bar.finish()
            print("\(out): merged \(adapter.pairs.flatMap(\.values).count) adapted weights")
        }
    }
}
