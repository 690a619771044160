import ArgumentParser
import Bonsai
import BonsaiFormats
import BonsaiTokenizer
import Foundation

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids of a text, like llama-tokenize.",
        discussion: """
        Only the tokenizer is read: for GGUF files the metadata, for Hugging Face folders tokenizer.json \
        (or vocab.json + merges.txt + added_tokens.json). No BOS is added (PHI-2 uses none).

          bonsai tokenize -m phi-2.Q4_0.gguf -p "Hello world"          → [15496, 995]
          bonsai tokenize -m models/phi-2 -p "x<|endoftext|>" --no-parse-special
        """)

    @Option(name: [.short, .long], help: "A GGUF file or a Hugging Face folder.")
    var model: String

    @Option(name: [.short, .long], help: "The text (escapes \\n, \\t are turned into newline and tab). Default: standard input.")
    var prompt: String?

    @Flag(name: .customLong("no-parse-special"), help: "Treat <|endoftext|> in the text as plain text.")
    var noParseSpecial = false

    @Flag(name: .customLong("show-tokens"), help: "Print one line per token: id and its text.")
    var showTokens = false

    func run() throws {
        try reportingErrors {
            let tokenizer: Tokenizer
            if FileManager.default.fileExists(atPath: model + "/config.json") || FileManager.default.fileExists(atPath: model + "/tokenizer.json") {
                tokenizer = try Tokenizer(hfRepo: model)
            } else {
                tokenizer = try Tokenizer(gguf: GGUFFile(path: model))
            }
            let text = prompt.map(unescape) ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            let ids = tokenizer.encode(text, parseSpecial: !noParseSpecial)
            if showTokens {
                for id in ids { print(String(format: "%6d -> '%@'", id, tokenizer.decode([id], special: true))) }
            } else {
                print("[" + ids.map(String.init).joined(separator: ", ") + "]")
            }
        }
    }
}
