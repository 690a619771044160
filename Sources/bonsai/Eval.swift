import ArgumentParser
import Bonsai
import BonsaiTrain
import CBonsai
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Loss and perplexity on the answer tokens of a JSONL file; with --compare, base vs adapted answers.",
        discussion: """
        The data is read as `bonsai train` reads it (same rendering and answer-only loss). With --lora the \
        base model's numbers are printed too, so you see what the fine-tune changed.

          bonsai eval -m phi-2.Q4_0.gguf --lora adapters/ --data data/valid.jsonl
          bonsai eval -m phi-2.Q4_0.gguf --lora adapters/ --compare prompts.txt -n 128

        --compare takes a text file with one instruction per line; each is asked as \
        "Instruct: <line>\\nOutput:" and answered greedily by the base and by the adapted model, side by side.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "A JSONL file (or a folder with valid.jsonl) to measure the loss on.") var data: String?
    @Option(name: .customLong("max-seq-len"), help: "Cut longer examples to this many tokens.") var maxSeqLen: Int = 2048
    @Option(name: .customLong("max-examples"), help: "Use only the first N examples.") var maxExamples: Int?
    @Flag(name: .customLong("no-mask-prompt"), help: "Count the prompt tokens too.") var noMaskPrompt = false
    @Option(name: .long, help: "A text file with one instruction per line to answer with and without the adapter.") var compare: String?
    @Option(name: [.short, .customLong("n-predict")], help: "Most tokens per --compare answer.") var nPredict: Int = 128

    func run() throws {
        try reportingErrors {
            guard data != nil || compare != nil else { throw ValidationError("give --data, --compare or both") }
            guard maxSeqLen >= 2, nPredict >= 1, maxExamples.map({ $0 >= 1 }) ?? true else {
                throw ValidationError("--max-seq-len must be ≥ 2, -n and --max-examples ≥ 1")
            }
            let loaded = try modelOptions.load()
            let adapter = loaded.model.adapter
            bonsai_interrupt_install()
            if let data {
                var isDir: ObjCBool = false
                let path = FileManager.default.fileExists(atPath: data, isDirectory: &isDir) && isDir.boolValue ? data + "/valid.jsonl" : data
                let d = try Dataset(path: path, tokenizer: loaded.tokenizer, maxTokens: maxSeqLen, maskPrompt: !noMaskPrompt)
                func report(_ label: String) throws {
                    let r = try Evaluation.loss(model: loaded.model, dataset: d, limit: maxExamples, shouldStop: { bonsai_interrupt_pending() })
                    print(String(format: "%@: loss %.4f, perplexity %.3f over %d answer tokens of %d examples", label, r.loss,
                                 r.perplexity, r.tokens, r.examples))
                }
                if adapter != nil {
                    try report("adapted")
                    loaded.model.adapter = nil
                    try report("base   ")
                    loaded.model.adapter = adapter
                } else {
                    try report("base")
                }
            }
            if let compare {
                guard let text = try? String(contentsOfFile: compare, encoding: .utf8) else { throw ValidationError("cannot read \(compare)") }
                let prompts = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                let session = try Session(loaded, nCtx: loaded.model.config.max_position_embeddings)
                for p in prompts {
                    if bonsai_interrupt_pending() { break }
                    print("### \(p)")
                    for (label, a) in adapter != nil ? [("base", nil), ("adapted", adapter)] : [("base", nil)] {
                        loaded.model.adapter = a
                        session.reset()
                        let ids = loaded.tokenizer.encode(ChatTemplate.instruct.turn(p, first: true), parseSpecial: false)
                        let r = try session.generate(prompt: ids, maxTokens: nPredict, sampler: .greedy,
                                                     stop: ChatTemplate.instruct.stopStrings, onText: { _ in })
                        print("--- \(label):\n\(r.text.trimmingCharacters(in: .whitespacesAndNewlines))")
                    }
                    loaded.model.adapter = adapter
                    print("")
                }
            }
        }
    }
}
