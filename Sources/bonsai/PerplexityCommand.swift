import ArgumentParser
import Bonsai
import Foundation

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity of a text file, computed as llama-perplexity does.",
        discussion: """
        The file's tokens are cut into non-overlapping chunks of --ctx-size tokens; each chunk is evaluated \
        from an empty cache and scored on its second half. The same file and --ctx-size give numbers that \
        compare directly with `llama-perplexity -f text.txt -c N`.

          bonsai perplexity -m phi-2.Q4_0.gguf -f wiki.test.raw --ctx-size 512
        """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: [.short, .long], help: "The text file.")
    var file: String

    @Option(name: [.short, .customLong("ctx-size")], help: "Tokens per chunk.")
    var ctxSize: Int = 512

    @Option(name: [.short, .customLong("batch-size")], help: "Tokens per forward pass.")
    var batchSize: Int = 512

    func run() throws {
        try reportingErrors {
            guard ctxSize >= 4 else { throw ValidationError("--ctx-size must be at least 4") }
            guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            let loaded = try modelOptions.load()
            let tokens = loaded.tokenizer.encode(String(decoding: data, as: UTF8.self))
            printErr("perplexity: \(tokens.count) tokens, \(tokens.count / ctxSize) chunks of \(ctxSize)")
            let start = Date()
            let result = try Perplexity.evaluate(loaded, tokens: tokens, nCtx: ctxSize, batchSize: batchSize) { i, n, ppl in
                emit(String(format: "[%d]%.4f,", i, ppl))
                if i == n { emit("\n") }
            }
            print(String(format: "Final estimate: PPL = %.4f (%d tokens scored, %.1f s)", result.perplexity, result.count,
                         Date().timeIntervalSince(start)))
        }
    }
}
