import ArgumentParser
import Bonsai
import CBonsai
import Foundation

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Talk with the model in the terminal.",
        discussion: """
        Each message is wrapped in PHI-2's format (--format): instruct writes "Instruct: <message>\\nOutput:", \
        chat writes "Alice: <message>\\nBob:", raw sends your text as it is. The conversation stays in the \
        model's cache, so earlier turns are not re-read; when the context (--ctx-size) is full, /reset starts over.

        Commands: /reset (forget the conversation), /help, /exit (or Ctrl-D).
        Ctrl-C stops the answer being written; at the prompt it leaves.

          bonsai chat -m models/phi-2.Q4_0.gguf
          bonsai chat -m models/phi-2 --quantize q8_0 --format chat --temp 0.7
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var context: ContextOptions
    @OptionGroup var sampling: SamplingOptions

    @Option(name: .long, help: "instruct, chat or raw (see above).")
    var format: String = ChatTemplate.instruct.rawValue

    func run() throws {
        try reportingErrors {
            guard let template = ChatTemplate(rawValue: format) else {
                throw ValidationError("--format must be one of: \(ChatTemplate.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let settings = try sampling.settings()
            let loaded = try modelOptions.load()
            let session = try context.session(for: loaded)
            let interactive = isatty(0) != 0
            printErr("bonsai: \(loaded.path) — \(loaded.formatDescription), context \(session.nCtx) tokens, \(bonsai_max_threads()) threads")
            printErr("format: \(template.summary). /help for commands, Ctrl-C stops an answer.")
            bonsai_interrupt_install()
            var first = true
            var input = LineReader()
            while true {
                if interactive { emit("\n> ") }
                bonsai_interrupt_clear()
                guard let line = input.next() else { break }   // EOF or Ctrl-C at the prompt
                let message = line.trimmingCharacters(in: .whitespaces)
                if message.isEmpty { continue }
                switch message {
                case "/exit", "/quit": return
                case "/reset":
                    session.reset()
                    first = true
                    printErr("(conversation cleared)")
                    continue
                case "/help":
                    printErr("/reset  forget the conversation\n/exit   leave (also Ctrl-D)\nCtrl-C  stop the current answer")
                    continue
                default: break
                }
                let ids = loaded.tokenizer.encode(template.turn(message, first: first))
                if session.tokens.count + ids.count >= session.nCtx {
                    printErr("(the context is full: \(session.tokens.count) of \(session.nCtx) tokens; /reset to start over)")
                    continue
                }
                first = false
                let result = try session.generate(prompt: ids, maxTokens: sampling.nPredict, sampler: settings,
                                                  stop: template.stopStrings + sampling.stop, onText: emit)
                emit("\n")
                var status = String(format: "[%d tokens, %.1f t/s", result.tokens.count, result.tokensPerSecond)
                if result.reason == .interrupted || result.reason == .contextFull || result.reason == .maxTokens {
                    status += ", stopped: \(result.reason.rawValue)"
                }
                printErr(status + "]")
            }
        }
    }
}
