import ArgumentParser
import Bonsai
import BonsaiFormats
import Foundation

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's architecture, metadata and tensors.",
        discussion: """
          bonsai info -m phi-2.Q4_0.gguf             architecture, metadata, tensor table
          bonsai info -m models/phi-2 --no-tensors   config of a Hugging Face folder
        """)

    @Option(name: [.short, .long], help: "A GGUF file or a Hugging Face folder.")
    var model: String

    @Flag(name: .customLong("no-tensors"), help: "Leave out the tensor table.")
    var noTensors = false

    func run() throws {
        try reportingErrors {
            if HFRepo.looksLikeRepo(model) {
                let repo = try HFRepo(path: model)
                let config = try Phi2Config(hf: repo.config, path: model + "/config.json")
                printConfig(config, format: "Hugging Face safetensors folder")
                if !noTensors { printTensors(repo.tensorNames.compactMap { repo.tensor($0) }) }
                return
            }
            let g = try GGUFFile(path: model)
            print("file:         \(model) (GGUF v\(g.version), \(g.file.count) bytes, alignment \(g.alignment))")
            print("metadata:")
            for (k, v) in g.metadata { print("  \(k) = \(v.summary)") }
            if let config = try? Phi2Config(gguf: g) { printConfig(config, format: "GGUF") }
            else { print("architecture: \(g.architecture ?? "(none)") — not a phi2 model Bonsai can run") }
            if !noTensors { printTensors(g.tensors) }
        }
    }

    func printConfig(_ c: Phi2Config, format: String) {
        print("architecture: phi2 (\(format))")
        print("  layers \(c.num_hidden_layers), hidden \(c.hidden_size), heads \(c.num_attention_heads) × \(c.head_dim), rotary dims \(c.rotary_dim) (θ \(c.rope_theta)), ffn \(c.intermediate_size), vocab \(c.vocab_size), context \(c.max_position_embeddings)")
    }

    func printTensors(_ tensors: [TensorRef]) {
        print("tensors: \(tensors.count)")
        var total = 0, params = 0
        var byType: [String: Int] = [:]
        for t in tensors {
            print(String(format: "  %-36@ %-6@ %-16@ %10d bytes", t.name, t.type.description,
                         t.shape.map(String.init).joined(separator: " × "), t.byteCount))
            total += t.byteCount
            params += t.elementCount
            byType[t.type.description, default: 0] += 1
        }
        print("total: \(params) parameters, \(total) bytes; types: " + byType.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", "))
    }
}
