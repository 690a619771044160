import ArgumentParser
import Bonsai
import CBonsai
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure prompt processing and generation speed, like llama-bench.",
        discussion: """
        pp<N>: N prompt tokens in one batch. tg<N>: N tokens generated one at a time. Both start from an \
        empty cache, or with --depth D from D cached positions ("@ dD", as llama-bench's -d): a long chat \
        makes every token read the whole cache. Each test runs once to warm up, then --repetitions times: \
        mean ± sd in tokens/s. Peak RSS is the process's high-water mark.

          bonsai bench -m phi2-synth-q4_0.gguf -t 2
          bonsai bench -m model.gguf -p 512 -n 128 -r 5 --json
          bonsai bench -m model.gguf -p 0 -n 32 -d 1024
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: [.customShort("p"), .customLong("n-prompt")], help: "Prompt tokens (0: skip).") var nPrompt = 512
    @Option(name: [.customShort("n"), .customLong("n-gen")], help: "Generated tokens (0: skip).") var nGen = 128
    @Option(name: [.short, .long], help: "Repetitions.") var repetitions = 5
    @Option(name: [.short, .long], help: "Cached positions before each test (filled once with prompt tokens).") var depth = 0
    @Flag(help: "One JSON object per test on standard output.") var json = false

    func run() throws {
        try reportingErrors {
            guard nPrompt >= 0, nGen >= 0, repetitions >= 1, nPrompt + nGen > 0, depth >= 0 else {
                throw ValidationError("-p and -n must be ≥ 0 (not both 0), -r ≥ 1, -d ≥ 0")
            }
            let start = Date()
            let loaded = try modelOptions.load()
            let loadSeconds = Date().timeIntervalSince(start)
            let c = loaded.model.config
            let nCtx = depth + max(nPrompt, nGen, 1)
            guard nCtx <= c.max_position_embeddings else {
                throw ValidationError("-d plus the longer test (\(nCtx) positions) exceeds the model's context (\(c.max_position_embeddings))")
            }
            var rng = SplitMix64(seed: 42)
            let ids = (0 ..< max(nPrompt, depth, 1)).map { _ in Int(rng.next() % UInt64(min(c.vocab_size, 50000))) }
            let at = depth > 0 ? " @ d\(depth)" : ""
            let cache: KVCache
            if depth > 0 {   // the cached positions every repetition starts from, fed as a prompt is
                let session = try Session(loaded, nCtx: nCtx)
                try session.feed(Array(ids[0 ..< depth]))
                cache = session.cache
            } else {
                cache = KVCache(config: c, nCtx: nCtx)
            }
            let type = loaded.model.layers.first.map { "\($0.fc1.type)" } ?? "?"
            let size = Double(loaded.model.weightBytes) / 1_073_741_824
            let params = Double(GGUFExport.parameterCount(c)) / 1e9
            let threads = Int(bonsai_max_threads())
            if !json {
                print("| model | size | params | threads | test | t/s |")
                print("| --- | ---: | ---: | ---: | ---: | ---: |")
            }
            func report(_ test: String, _ rates: [Double]) {
                let mean = rates.reduce(0, +) / Double(rates.count)
                let sd = rates.count > 1 ? (rates.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(rates.count - 1)).squareRoot() : 0
                if json {
                    print("{\"test\": \"\(test)\", \"mean\": \(mean), \"sd\": \(sd), \"samples\": \(rates), \"threads\": \(threads), \"type\": \"\(type)\", \"peak_rss_bytes\": \(peakRSS())}")
                } else {
                    print(String(format: "| phi2 %@ | %.2f GiB | %.2f B | %d | %@ | %.2f ± %.2f |", type, size, params, threads, test, mean, sd))
                }
            }
            if nPrompt > 0 {
                let act = Phi2Activations(config: c, maxTokens: nPrompt, nCtx: nCtx, allLogits: false)
                let prompt = Array(ids[0 ..< nPrompt])
                var rates: [Double] = []
                for rep in 0 ... repetitions {
                    cache.truncate(to: depth)
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try loaded.model.forward(prompt, cache: cache, act: act)
                    let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    if rep > 0 { rates.append(Double(nPrompt) / s) }
                }
                report("pp\(nPrompt)\(at)", rates)
            }
            if nGen > 0 {
                let act = Phi2Activations(config: c, maxTokens: 1, nCtx: nCtx, allLogits: false)
                var rates: [Double] = []
                for rep in 0 ... repetitions {
                    cache.truncate(to: depth)
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    var tok = ids[0]
                    for _ in 0 ..< nGen {
                        try loaded.model.forward([tok], cache: cache, act: act)
                        tok = (tok + 1) % 50000
                    }
                    let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    if rep > 0 { rates.append(Double(nGen) / s) }
                }
                report("tg\(nGen)\(at)", rates)
            }
            if !json {
                print(String(format: "load %.2f s, peak RSS %.0f MiB, KV cache %.0f MiB, CPU: %@", loadSeconds,
                             Double(peakRSS()) / 1_048_576, Double(cache.byteCount) / 1_048_576, String(cString: bonsai_cpu_features())))
            }
        }
    }
}

/// The process's peak resident set (VmHWM), in bytes.
func peakRSS() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}
