import ArgumentParser
import Bonsai
import BonsaiFormats
import Foundation

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a PHI-2-shaped GGUF with random weights (for benchmarks, no download needed).",
        discussion: """
        Full PHI-2 size by default (32 layers, hidden 2560, ffn 10240, 32 heads, vocab 51200: 2.78 B \
        parameters). --type takes llama-quantize's names, including the q4_K_M / q5_K_M mixes. The \
        tokenizer is a synthetic byte-level BPE; llama.cpp loads the file as it loads PHI-2. With \
        another --hidden, the heads and rotary dims follow PHI-2's head size and rotary fraction \
        unless given.

          bonsai synth --type q4_0 models/phi2-synth-q4_0.gguf
          bonsai synth --type q4_K_M --layers 4 /tmp/small.gguf
          bonsai synth --layers 2 --hidden 160 --ff 640 --vocab 1000 /tmp/tiny.gguf
        """)

    @Option(help: "Architecture (only phi2).") var arch = "phi2"
    @Option(help: "Number of layers.") var layers = 32
    @Option(help: "Hidden size.") var hidden = 2560
    @Option(help: "Feed-forward size.") var ff = 10240
    @Option(help: "Attention heads (default: hidden / 80, PHI-2's head size; / 64 or / 32 where 80 does not divide).")
    var heads: Int?
    @Option(help: "Rotary dimensions per head (default: 0.4 × head size, PHI-2's partial_rotary_factor, rounded down to even: 32 for PHI-2).")
    var rotary: Int?
    @Option(help: "Vocabulary (embedding rows).") var vocab = 51200
    @Option(help: "As llama-quantize names it: f16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K_M, q4_K_M, q5_K_M, q6_K, ...") var type = "q4_0"
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Argument(help: "Output .gguf path.") var output: String

    func run() throws {
        try reportingErrors {
            guard arch == "phi2" else { throw ValidationError("--arch must be phi2") }
            guard let scheme = QuantScheme(name: type) else {
                throw ValidationError("--type must be one of \(QuantScheme.names)")
            }
            let heads = self.heads ?? [80, 64, 32].first { hidden % $0 == 0 }.map { hidden / $0 } ?? 1
            guard layers >= 1, hidden >= 32, ff >= 32, heads >= 1, hidden % heads == 0, vocab >= 300 else {
                throw ValidationError("sizes must be positive, --hidden at least 32 and a multiple of --heads, --ff at least 32, --vocab at least 300")
            }
            let rotary = self.rotary ?? Int(Double(hidden / heads) * 0.4) / 2 * 2
            let block = max(scheme.baseType.blockSize, 1)
            guard hidden % block == 0, ff % block == 0 else {
                throw ValidationError("--hidden and --ff must be multiples of \(block) for \(type)")
            }
            let config = Phi2Config(hidden_size: hidden, intermediate_size: ff, num_hidden_layers: layers,
                                    num_attention_heads: heads, rotary_dim: rotary, vocab_size: vocab)
            try config.validate(path: "synth options")
            let bar = ProgressBar(label: "synth \(type)")
            try Synth.write(config: config, scheme: scheme, to: output, seed: seed, progress: bar.update)
            bar.finish()
            let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
            print(size >= 100_000_000 ? String(format: "%@: %.2f GB", output, Double(size) / 1e9)
                                      : String(format: "%@: %.2f MB", output, Double(size) / 1e6))
        }
    }
}

/// A one-line progress bar on standard error.
/// Only on a terminal: in a log or pipe it would be hundreds of carriage returns.
final class ProgressBar {
    let label: String
    let start = Date()
    private var last = -1
    private let tty = isatty(2) != 0

    init(label: String) { self.label = label }

    func update(_ done: Int, _ total: Int) {
        let pct = total > 0 ? done * 100 / total : 100
        guard tty, pct != last else { return }
        last = pct
        let width = 30, filled = width * pct / 100
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        FileHandle.standardError.write(Data(String(format: "\r%@ %@ %3d%% (%d/%d) %.0fs", label, bar, pct, done, total,
                                                   Date().timeIntervalSince(start)).utf8))
    }

    func finish() { if tty { FileHandle.standardError.write(Data("\n".utf8)) } }
}
