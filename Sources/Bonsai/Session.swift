import BonsaiTokenizer
import CBonsai
import Foundation

/// Why generation stopped.
public enum StopReason: String, Sendable {
    case endOfText = "end of text"
    case stopString = "stop string"
    case maxTokens = "token limit"
    case contextFull = "context full"
    case interrupted = "interrupted"
}

public struct GenerationResult: Sendable {
    public var text = ""
    public var tokens: [Int] = []
    public var reason = StopReason.maxTokens
    public var promptTokens = 0
    public var promptSeconds = 0.0
    public var generatedSeconds = 0.0
    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    public var tokensPerSecond: Double { generatedSeconds > 0 ? Double(tokens.count) / generatedSeconds : 0 }
}

/// One conversation with a model: the KV cache, the tokens in it, and the buffers of the forward
/// pass, all allocated once. Text is appended with `feed`, answers come from `generate`.
///
/// Context length: a session holds at most `nCtx` tokens. Generation stops with `.contextFull` when
/// the next token would not fit; `reset()` (chat: /reset) starts over with an empty cache.
public final class Session {
    public let loaded: LoadedModel
    public let cache: KVCache
    public let activations: Phi2Activations
    public private(set) var tokens: [Int] = []
    /// True when `activations.logits` holds the logits after the last token in `tokens`.
    private var logitsReady = false

    public var model: Phi2 { loaded.model }
    public var tokenizer: Tokenizer { loaded.tokenizer }
    public var nCtx: Int { cache.nCtx }

    public init(_ loaded: LoadedModel, nCtx: Int, batchSize: Int = 512) throws {
        guard nCtx >= 1 else { throw ModelError.invalidOption("--ctx-size must be at least 1") }
        guard batchSize >= 1 else { throw ModelError.invalidOption("--batch-size must be at least 1") }
        self.loaded = loaded
        cache = KVCache(config: loaded.model.config, nCtx: nCtx)
        activations = Phi2Activations(config: loaded.model.config, maxTokens: min(batchSize, nCtx), nCtx: nCtx,
                                      allLogits: false)
    }

    public func reset() {
        cache.reset()
        tokens.removeAll()
        logitsReady = false
    }

    /// Drops tokens from `count` on (their cache entries are overwritten later).
    public func truncate(to count: Int) {
        guard count < tokens.count else { return }
        tokens.removeLast(tokens.count - count)
        cache.truncate(to: count)
        logitsReady = false
    }

    /// Runs `ids` through the model in batches, leaving the logits of the last one.
    public func feed(_ ids: [Int]) throws {
        guard !ids.isEmpty else { return }
        guard tokens.count + ids.count <= nCtx else { throw ModelError.contextFull(nCtx: nCtx) }
        var i = 0
        while i < ids.count {
            let chunk = Array(ids[i ..< min(ids.count, i + activations.maxTokens)])
            try model.forward(chunk, cache: cache, act: activations)
            tokens += chunk
            i += chunk.count
        }
        logitsReady = true
    }

    /// Feeds `prompt`, then samples up to `maxTokens` tokens, streaming text to `onText`.
    /// Stops at `<|endoftext|>`, at any of `stop` (the stop text is not emitted, and the cache is cut back
    /// to the tokens of the emitted text, so a chat can continue from there), at the context length, or
    /// when Ctrl-C was pressed (see bonsai_interrupt_install).
    public func generate(prompt: [Int], maxTokens: Int, sampler settings: SamplerSettings, stop: [String] = [],
                         onText: (String) -> Void = { _ in }) throws -> GenerationResult {
        var result = GenerationResult()
        let t0 = DispatchTime.now().uptimeNanoseconds
        if !prompt.isEmpty { try feed(prompt) }
        result.promptTokens = prompt.count
        let t1 = DispatchTime.now().uptimeNanoseconds
        result.promptSeconds = Double(t1 - t0) / 1e9
        guard logitsReady else { throw ModelError.invalidOption("nothing to continue from: the prompt is empty") }

        var sampler = Sampler(settings: settings, tokenizer: tokenizer, vocabSize: model.config.vocab_size)
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        let start = tokens.count
        var text = ""            // all text decoded so far
        var emitted = 0          // characters of `text` already passed to onText
        var tokenEnds: [Int] = []  // text length after each generated token
        let most = min(maxTokens, max(nCtx - tokens.count, 0)) + 1   // room for every token: no regrowth per token
        tokenEnds.reserveCapacity(most)
        result.tokens.reserveCapacity(most)
        let stop = stop.filter { !$0.isEmpty }
        let holdBack = stop.map(\.count).max().map { $0 - 1 } ?? 0

        func finish(_ reason: StopReason, keepChars: Int) {
            let tail = text.prefix(keepChars).dropFirst(emitted)
            if !tail.isEmpty { onText(String(tail)) }
            result.text = String(text.prefix(keepChars))
            result.reason = reason
            result.generatedSeconds = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
        }

        while true {
            if bonsai_interrupt_pending() { finish(.interrupted, keepChars: text.count); break }
            if result.tokens.count >= maxTokens { text += decoder.flush(); finish(.maxTokens, keepChars: text.count); break }
            let id = sampler.sample(activations.logits.pointer, recent: tokens[...])
            if id == tokenizer.eosID { text += decoder.flush(); finish(.endOfText, keepChars: text.count); break }
            result.tokens.append(id)
            text += decoder.append(id)
            tokenEnds.append(text.count)
            if let cut = stop.compactMap({ text.range(of: $0)?.lowerBound }).min() {
                let keep = text.distance(from: text.startIndex, to: cut)
                finish(.stopString, keepChars: keep)
                // keep in the cache only tokens whose text lies entirely before the stop string
                let kept = tokenEnds.prefix { $0 <= keep }.count
                truncate(to: start + kept)
                result.tokens = Array(result.tokens.prefix(kept))
                return result
            }
            let safe = max(emitted, text.count - holdBack)
            if safe > emitted {
                onText(String(text.prefix(safe).dropFirst(emitted)))
                emitted = safe
            }
            if tokens.count >= nCtx { finish(.contextFull, keepChars: text.count); break }
            try feed([id])
        }
        return result
    }
}
