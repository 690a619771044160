import ArgumentParser

@main
struct BonsaiCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bonsai",
        abstract: "Run and fine-tune Microsoft PHI-2 on the CPU, from a GGUF file or a Hugging Face download.",
        discussion: """
        A model is a GGUF file (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K…q6_K; fused or split \
        attention weights) or a Hugging Face folder (config.json, *.safetensors, tokenizer files).

        Start here:
          bonsai chat -m models/phi-2                      talk to the model
          bonsai generate -m models/phi-2.Q4_0.gguf -p "Instruct: Why is the sky blue?\\nOutput:"
          bonsai info -m models/phi-2.Q4_0.gguf            what is in the file
          bonsai train -m models/phi-2.Q4_0.gguf --data data/ --adapter-path adapters/
                                                           LoRA fine-tuning on your JSONL
          bonsai chat -m models/phi-2.Q4_0.gguf --lora adapters/    with the adapter
          bonsai export -m models/phi-2.Q4_0.gguf --lora adapters/ --out tuned.gguf
        """,
        subcommands: [Chat.self, Generate.self, Tokenize.self, Info.self, PerplexityCommand.self, BenchCommand.self, SynthCommand.self, QuantizeCommand.self, Train.self, Export.self, Eval.self])
}
