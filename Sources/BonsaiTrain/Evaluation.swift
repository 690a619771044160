import Bonsai
import CBonsai
import Foundation

/// Loss on answer tokens with the inference forward pass (so it runs with or without a runtime adapter,
/// on any base): the number `bonsai eval` reports and the way people compare a fine-tune with its base.
public enum Evaluation {
    public struct Result: Sendable {
        public let lossSum: Double
        public let tokens: Int
        public let examples: Int
        public var loss: Double { lossSum / Double(max(tokens, 1)) }
        public var perplexity: Double { exp(loss) }
    }

    public static func loss(model: Phi2, dataset: Dataset, limit: Int? = nil, shouldStop: () -> Bool = { false }) throws -> Result {
        let c = model.config
        let examples = Array(dataset.examples.prefix(limit ?? dataset.examples.count))
        let longest = examples.map(\.tokens.count).max() ?? 1
        let cache = KVCache(config: c, nCtx: longest)
        let act = Phi2Activations(config: c, maxTokens: longest, nCtx: longest, allLogits: true)
        var sum = 0.0, count = 0, done = 0
        for e in examples {
            if shouldStop() { break }
            cache.reset()
            try model.forward(e.tokens, cache: cache, act: act, allLogits: true)
            let targets = e.targets
            let rows = (0 ..< e.tokens.count).filter { targets[$0] != nil }
            for (i, t) in rows.enumerated() {   // compact the rows with a target to the front, then one cross-entropy call
                if i != t { (act.logits.pointer + i * c.vocab_size).update(from: act.logits.pointer + t * c.vocab_size, count: c.vocab_size) }
            }
            sum += bonsai_cross_entropy(act.logits.pointer, rows.map { Int32(targets[$0]!) }, Int64(rows.count), Int64(c.vocab_size), 0)
            count += rows.count
            done += 1
        }
        return Result(lossSum: sum, tokens: count, examples: done)
    }
}
