import Bonsai
import BonsaiFormats
import Foundation
import TestSupport
import XCTest

/// Models built once per test process: the shipped files, plus the two the fixtures describe but do not
/// ship, made here with our own writers (an f16 GGUF from the HF repo, a fused-qkv rewrite of q8_0).
enum Models {
    nonisolated(unsafe) private static var cache: [String: LoadedModel] = [:]
    private static let lock = NSLock()

    static func load(_ key: String) throws -> LoadedModel {
        lock.lock()
        defer { lock.unlock() }
        if let m = cache[key] { return m }
        let path: String
        switch key {
        case "hf": path = try Fixtures.path("hf")
        case "f16":
            path = Fixtures.temporaryPath("model-f16.gguf")
            try Quantize.run(input: try Fixtures.path("hf"), output: path, scheme: .f16)
        case "q4_1", "q5_0", "q5_1", "q5_K_M", "q6_K":
            // not shipped; our quantizer writes llama-quantize's bytes (QuantizeTests), i.e. the files behind refs/gguf_<key>
            path = Fixtures.temporaryPath("model-\(key).gguf")
            try Quantize.run(input: try Fixtures.path("hf"), output: path, scheme: try XCTUnwrap(QuantScheme(name: key)))
        case "q8_0-fused-qkv":
            path = Fixtures.temporaryPath("model-q8_0-fused-qkv.gguf")
            try GGUFExport.fuseQKV(gguf: GGUFFile(path: try Fixtures.path("gguf/model-q8_0.gguf")), to: path)
        default: path = try Fixtures.path("gguf/model-\(key).gguf")
        }
        let m = try ModelLoader.load(path: path)
        cache[key] = m
        return m
    }

    /// Logits at every position of `ids` (one forward pass over the whole prompt): [n, vocab].
    static func allLogits(_ m: LoadedModel, _ ids: [Int]) throws -> [[Float]] {
        let c = m.model.config
        let cache = KVCache(config: c, nCtx: ids.count)
        let act = Phi2Activations(config: c, maxTokens: ids.count, nCtx: ids.count, allLogits: true)
        try m.model.forward(ids, cache: cache, act: act, allLogits: true)
        let a = act.logits.array
        return (0 ..< ids.count).map { Array(a[$0 * c.vocab_size ..< ($0 + 1) * c.vocab_size]) }
    }

    static func logSumExp(_ x: [Float]) -> Float {
        let m = x.max()!
        return m + Float(log(x.reduce(0.0) { $0 + exp(Double($1 - m)) }))
    }

    static func argmax(_ x: [Float]) -> Int { x.indices.max { x[$0] < x[$1] || (x[$0] == x[$1] && $0 > $1) }! }

    /// Gap between the best and second-best logit.
    static func top2Gap(_ x: [Float]) -> Float {
        var a = -Float.infinity, b = -Float.infinity
        for v in x { if v > a { b = a; a = v } else if v > b { b = v } }
        return a - b
    }
}
