import Bonsai
import Foundation

/// AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments):
///   p ← p (1 − lr λ);  m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²
///   p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + ε)
/// State (m, v) is f32, one pair of buffers per parameter buffer.
public final class AdamW: @unchecked Sendable {
    public struct Settings: Codable, Equatable, Sendable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var eps: Float = 1e-8
        public var weightDecay: Float = 0
        public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
            (self.beta1, self.beta2, self.eps, self.weightDecay) = (beta1, beta2, eps, weightDecay)
        }
    }

    public let settings: Settings
    /// Updates done so far (t in the bias corrections).
    public private(set) var step = 0
    let params: [(param: FloatBuffer, grad: FloatBuffer)]
    let m: [FloatBuffer]
    let v: [FloatBuffer]

    public init(adapter: LoRAAdapter, grads: LoRAGradients, settings: Settings = Settings()) {
        self.settings = settings
        params = grads.zipped(with: adapter)
        m = params.map { FloatBuffer(count: $0.param.count) }
        v = params.map { FloatBuffer(count: $0.param.count) }
    }

    /// One update of every parameter from its gradient, at learning rate lr.
    public func update(lr: Float) {
        step += 1
        let s = settings
        let bc1 = 1 - pow(Double(s.beta1), Double(step)), bc2 = 1 - pow(Double(s.beta2), Double(step))
        let stepSize = Float(Double(lr) / bc1), bc2Sqrt = Float(bc2.squareRoot())
        let decay = 1 - lr * s.weightDecay
        for (i, pg) in params.enumerated() {
            let p = pg.param.pointer, g = pg.grad.pointer, mi = m[i].pointer, vi = v[i].pointer
            for j in 0 ..< pg.param.count {
                if s.weightDecay != 0 { p[j] *= decay }
                mi[j] += (g[j] - mi[j]) * (1 - s.beta1)          // torch: exp_avg.lerp_(grad, 1 - beta1)
                vi[j] = vi[j] * s.beta2 + (1 - s.beta2) * g[j] * g[j]
                p[j] -= stepSize * mi[j] / (vi[j].squareRoot() / bc2Sqrt + s.eps)
            }
        }
    }

    /// The optimizer's state as named buffers (for checkpoints), and back.
    public var state: (step: Int, m: [FloatBuffer], v: [FloatBuffer]) { (step, m, v) }

    public func restore(step: Int, m newM: [[Float]], v newV: [[Float]]) throws {
        guard newM.count == m.count, newV.count == v.count,
              zip(newM, m).allSatisfy({ $0.count == $1.count }), zip(newV, v).allSatisfy({ $0.count == $1.count }) else {
            throw TrainError.checkpoint("optimizer state does not match the adapter's shapes")
        }
        self.step = step
        for (src, dst) in zip(newM, m) { src.withUnsafeBufferPointer { dst.pointer.update(from: $0.baseAddress!, count: src.count) } }
        for (src, dst) in zip(newV, v) { src.withUnsafeBufferPointer { dst.pointer.update(from: $0.baseAddress!, count: src.count) } }
    }
}
