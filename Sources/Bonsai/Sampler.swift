import Foundation
import BonsaiTokenizer

/// How the next token is chosen. Defaults are llama.cpp's; temperature 0 is greedy.
public struct SamplerSettings: Sendable {
    public var temperature: Float = 0.8
    public var topK: Int = 40           // 0: off
    public var topP: Float = 0.95       // 1: off
    public var minP: Float = 0.05       // 0: off
    public var repeatPenalty: Float = 1.0   // 1: off
    public var repeatLastN: Int = 64
    public var seed: UInt64 = 0x5EED

    public init() {}

    public static var greedy: SamplerSettings {
        var s = SamplerSettings()
        s.temperature = 0
        return s
    }
}

/// Picks tokens from logits: repetition penalty → top-k → top-p → min-p → temperature → draw, in
/// llama.cpp's order. Ids the tokenizer does not have (PHI-2's 905 padding rows) are never picked.
/// Buffers are reused: sampling allocates nothing per token.
public struct Sampler {
    public let settings: SamplerSettings
    private var rng: SplitMix64
    private let sampleable: [Bool]
    private var candidates: [(id: Int32, logit: Float)] = []
    private var probs: [Float] = []

    public init(settings: SamplerSettings, tokenizer: Tokenizer, vocabSize: Int) {
        self.settings = settings
        rng = SplitMix64(seed: settings.seed)
        sampleable = (0 ..< vocabSize).map { tokenizer.isSampleable($0) }
        candidates.reserveCapacity(vocabSize)
        probs.reserveCapacity(vocabSize)
    }

    public mutating func sample(_ logits: UnsafePointer<Float>, recent: ArraySlice<Int>) -> Int {
        let s = settings
        if s.temperature <= 0 && s.repeatPenalty == 1 {
            var best = -1, bestLogit = -Float.infinity
            for i in 0 ..< sampleable.count where sampleable[i] && (best < 0 || logits[i] > bestLogit) {
                best = i
                bestLogit = logits[i]
            }
            return best
        }
        candidates.removeAll(keepingCapacity: true)
        for i in 0 ..< sampleable.count where sampleable[i] { candidates.append((Int32(i), logits[i])) }
        if s.repeatPenalty != 1 {
            // as llama.cpp: divide positive logits, multiply negative ones, once per distinct recent token
            let window = recent.suffix(max(0, s.repeatLastN))
            var seen = Set<Int>()
            for t in window where seen.insert(t).inserted {
                if let j = candidates.firstIndex(where: { $0.id == Int32(t) }) {
                    let l = candidates[j].logit
                    candidates[j].logit = l > 0 ? l / s.repeatPenalty : l * s.repeatPenalty
                }
            }
        }
        if s.temperature <= 0 { return Int(candidates.max { $0.logit < $1.logit }!.id) }
        if s.topK > 0, candidates.count > s.topK { keepBest(s.topK) } else { candidates.sort(by: Self.before) }
        softmax(scale: 1)
        if s.topP < 1 {
            var cum: Float = 0, keep = candidates.count
            for (i, p) in probs.enumerated() {
                cum += p
                if cum >= s.topP { keep = i + 1; break }
            }
            candidates.removeLast(candidates.count - keep)
        }
        if s.minP > 0 {
            let threshold = logf(s.minP) + candidates[0].logit   // p_i >= minP * p_max ⇔ l_i >= l_max + log(minP)
            let keep = max(1, candidates.firstIndex { $0.logit < threshold } ?? candidates.count)
            candidates.removeLast(candidates.count - keep)
        }
        softmax(scale: 1 / s.temperature)
        var r = Float(rng.nextDouble())
        for (i, p) in probs.enumerated() {
            r -= p
            if r <= 0 { return Int(candidates[i].id) }
        }
        return Int(candidates[candidates.count - 1].id)
    }

    /// Candidate order: higher logit first, ties by lower id — the order a stable sort of the candidates
    /// (appended by id) gives.
    private static func before(_ a: (id: Int32, logit: Float), _ b: (id: Int32, logit: Float)) -> Bool {
        a.logit > b.logit || (a.logit == b.logit && a.id < b.id)
    }

    /// Keeps the k first candidates in `before` order, sorted: a heap of k instead of sorting the whole
    /// vocabulary every token (and a sort's scratch buffer: the decode loop allocates nothing).
    private mutating func keepBest(_ k: Int) {
        candidates.withUnsafeMutableBufferPointer { c in
            // c[0 ..< n] is a heap whose root comes last in `before` order
            func siftDown(_ start: Int, _ n: Int) {
                var i = start
                while true {
                    var w = 2 * i + 1
                    if w >= n { return }
                    if w + 1 < n && Self.before(c[w], c[w + 1]) { w += 1 }
                    if !Self.before(c[i], c[w]) { return }
                    c.swapAt(i, w)
                    i = w
                }
            }
            for i in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(i, k) }
            for i in k ..< c.count where Self.before(c[i], c[0]) {
                c[0] = c[i]
                siftDown(0, k)
            }
            for n in stride(from: k - 1, to: 0, by: -1) {   // the last kept goes to the end, and so on
                c.swapAt(0, n)
                siftDown(0, n)
            }
        }
        candidates.removeLast(candidates.count - k)
    }

    /// probs = softmax(logit * scale) over the candidates (sorted descending, so the first is the max).
    private mutating func softmax(scale: Float) {
        probs.removeAll(keepingCapacity: true)
        let m = candidates[0].logit * scale
        var sum: Float = 0
        for c in candidates {
            let e = expf(c.logit * scale - m)
            probs.append(e)
            sum += e
        }
        for i in probs.indices { probs[i] /= sum }
    }
}

/// A small, fast, seedable generator: the same seed gives the same tokens on every machine.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
