import ArgumentParser
import Bonsai
import CBonsai
import Foundation

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a prompt once and stream the text.",
        discussion: """
        The prompt is sent as written: PHI-2 answers instructions best as "Instruct: <question>\\nOutput:". \
        Without --prompt or --file, the prompt is read from standard input.

          bonsai generate -m phi-2.Q4_0.gguf -p "Instruct: Name three prime numbers.\\nOutput:" --temp 0
          echo "def fib(n):" | bonsai generate -m models/phi-2 -n 64

        --temp 0 is greedy and deterministic. Generation stops at <|endoftext|>, at a --stop text, after \
        -n tokens, or when the context (--ctx-size) is full. Speed goes to standard error.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var context: ContextOptions
    @OptionGroup var sampling: SamplingOptions

    @Option(name: [.short, .long], help: "The prompt text. Escapes \\n and \\t are turned into newline and tab.")
    var prompt: String?

    @Option(name: [.short, .long], help: "Read the prompt from this file.")
    var file: String?

    @Flag(name: .customLong("no-escape"), help: "Take --prompt literally (do not turn \\n into a newline).")
    var noEscape = false

    @Flag(name: .long, help: "Do not print the speed line.")
    var quiet = false

    func run() throws {
        try reportingErrors {
            let settings = try sampling.settings()
            var text: String
            if let p = prompt {
                text = noEscape ? p : unescape(p)
            } else if let f = file {
                guard let s = try? String(contentsOfFile: f, encoding: .utf8) else { throw ValidationError("cannot read \(f)") }
                text = s
            } else {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            }
            let loaded = try modelOptions.load()
            let session = try context.session(for: loaded)
            let ids = loaded.tokenizer.encode(text)
            guard !ids.isEmpty else { throw ValidationError("the prompt is empty") }
            guard ids.count < session.nCtx else {
                throw ValidationError("the prompt has \(ids.count) tokens; --ctx-size \(session.nCtx) leaves no room to answer")
            }
            bonsai_interrupt_install()
            let result = try session.generate(prompt: ids, maxTokens: sampling.nPredict, sampler: settings,
                                              stop: sampling.stop, onText: emit)
            emit("\n")
            if !quiet {
                printErr(String(format: "[prompt %d tokens, %.1f t/s | generated %d tokens, %.1f t/s | stopped: %@]",
                                result.promptTokens, result.promptTokensPerSecond, result.tokens.count,
                                result.tokensPerSecond, result.reason.rawValue))
            }
        }
    }
}

/// "\n", "\t", "\\" and "\"" in a command-line prompt, as llama.cpp's -p does with --escape.
func unescape(_ s: String) -> String {
    var out = "", it = s.makeIterator()
    while let c = it.next() {
        guard c == "\\", let n = it.next() else { out.append(c); continue }
        switch n {
        case "n": out.append("\n")
        case "t": out.append("\t")
        case "r": out.append("\r")
        case "\\": out.append("\\")
        case "\"": out.append("\"")
        case "'": out.append("'")
        default: out.append(c); out.append(n)
        }
    }
    return out
}
