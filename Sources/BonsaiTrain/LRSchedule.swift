import Foundation

/// Learning rate per optimizer step: linear warmup over the first `warmup` steps (step s gets
/// lr · (s + 1) / warmup, so the first step already moves), then constant or cosine decay to 0 at the end.
public struct LRSchedule: Sendable {
    public enum Kind: String, Sendable, CaseIterable { case constant, cosine }
    public let kind: Kind
    public let peak: Float
    public let warmup: Int
    public let total: Int

    public init(kind: Kind, peak: Float, warmup: Int, total: Int) {
        (self.kind, self.peak, self.warmup, self.total) = (kind, peak, warmup, total)
    }

    /// lr for step s (0-based).
    public func lr(at s: Int) -> Float {
        if s < warmup { return peak * Float(s + 1) / Float(warmup) }
        switch kind {
        case .constant: return peak
        case .cosine:
            let span = max(total - warmup, 1)
            let progress = Double(min(s - warmup, span)) / Double(span)
            return peak * Float(0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}
