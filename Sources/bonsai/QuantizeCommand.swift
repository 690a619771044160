import ArgumentParser
import Bonsai
import Foundation

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a model as a GGUF of another type, as llama.cpp's tools would.",
        discussion: """
        From a Hugging Face folder, f32/f16/bf16/q8_0 files are laid out as convert_hf_to_gguf.py writes \
        them; every other type, and any GGUF input, as llama-quantize writes them (same tensor names, \
        metadata, tokenizer, per-tensor type mix for the _M schemes). The file is written atomically.

          bonsai quantize models/phi-2 models/phi-2.f16.gguf --type f16
          bonsai quantize models/phi-2.f16.gguf models/phi-2.Q4_0.gguf --type q4_0

        Types, as llama-quantize names them (any case): f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q6_K, \
        and the per-tensor mixes q2_K, q3_K_S, q3_K_M, q3_K_L, q4_K_S, q4_K_M, q5_K_S, q5_K_M (q3_K, q4_K and q5_K \
        mean the _M ones), iq4_nl and iq4_xs (4 bits on non-linear levels; made without an importance \
        matrix). Each is byte for byte what llama-quantize writes from the same f16 file. Rows that are \
        not whole blocks of the type take llama-quantize's replacement (q4_K → q5_0, q5_K → q5_1, \
        q6_K → q8_0, iq4_xs → iq4_nl, else f16). A quantized GGUF input is dequantized first, as llama-quantize \
        --allow-requantize does.
        """)

    @Argument(help: "A Hugging Face folder or a GGUF file.") var input: String
    @Argument(help: "The GGUF file to write.") var output: String
    @Option(help: "The target type (see above).") var type: String

    func run() throws {
        try reportingErrors {
            guard let scheme = QuantScheme(name: type) else {
                throw ValidationError("--type must be one of \(QuantScheme.names)")
            }
            guard input != output else { throw ValidationError("the output must be another file than the input") }
            let bar = ProgressBar(label: "quantize \(type)")
            try Quantize.run(input: input, output: output, scheme: scheme, progress: bar.update)
            bar.finish()
            let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
            print(String(format: "%@: %.1f MB", output, Double(size) / 1e6))
        }
    }
}
