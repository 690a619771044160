import Foundation

/// Perplexity the way llama-perplexity computes it: the text's tokens are cut into non-overlapping
/// chunks of nCtx tokens; each chunk is evaluated from an empty cache, and only its second half is
/// scored (each token predicted with at least nCtx/2 tokens of context).
public struct PerplexityResult: Sendable {
    public var chunks: [Double] = []   // running perplexity after each chunk
    public var nll = 0.0
    public var count = 0
    public var perplexity: Double { count > 0 ? exp(nll / Double(count)) : .nan }
}

public enum Perplexity {
    public static func evaluate(_ loaded: LoadedModel, tokens: [Int], nCtx: Int, batchSize: Int = 512,
                                onChunk: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> PerplexityResult {
        guard nCtx >= 4 else { throw ModelError.invalidOption("--ctx-size must be at least 4 for perplexity") }
        let nChunks = tokens.count / nCtx
        guard nChunks >= 1 else {
            throw ModelError.invalidOption("the text has \(tokens.count) tokens; perplexity needs at least --ctx-size (\(nCtx))")
        }
        let model = loaded.model, vocab = model.config.vocab_size
        let cache = KVCache(config: model.config, nCtx: nCtx)
        let batch = min(batchSize, nCtx)
        let act = Phi2Activations(config: model.config, maxTokens: batch, nCtx: nCtx, allLogits: true)
        var result = PerplexityResult()
        let first = nCtx / 2
        for c in 0 ..< nChunks {
            cache.reset()
            let chunk = Array(tokens[c * nCtx ..< (c + 1) * nCtx])
            var b = 0
            while b < nCtx {
                let ids = Array(chunk[b ..< min(nCtx, b + batch)])
                try model.forward(ids, cache: cache, act: act, allLogits: true)
                // score positions j in [first, nCtx - 1) that are in this batch: logits[j] predicts chunk[j + 1]
                for j in stride(from: max(b, first), to: min(b + ids.count, nCtx - 1), by: 1) {
                    let row = act.logits.pointer + (j - b) * vocab
                    result.nll += logSumExp(row, vocab) - Double(row[chunk[j + 1]])
                    result.count += 1
                }
                b += ids.count
            }
            result.chunks.append(result.perplexity)
            onChunk(c + 1, nChunks, result.perplexity)
        }
        return result
    }

    static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        var m = -Float.infinity
        for i in 0 ..< n { m = max(m, x[i]) }
        var s = 0.0
        for i in 0 ..< n { s += exp(Double(x[i] - m)) }
        return Double(m) + log(s)
    }
}
