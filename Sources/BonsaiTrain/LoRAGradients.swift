import Bonsai

/// Gradients of the loss w.r.t. every A and B of an adapter, laid out like the adapter (f32).
public final class LoRAGradients: @unchecked Sendable {
    public let pairs: [[LoRATarget: (dA: FloatBuffer, dB: FloatBuffer)]]

    public init(like adapter: LoRAAdapter) {
        pairs = adapter.pairs.map { layer in
            layer.mapValues { (dA: FloatBuffer(count: $0.A.count), dB: FloatBuffer(count: $0.B.count)) }
        }
    }

    public func zero() {
        for g in pairs.flatMap(\.values) {
            g.dA.pointer.update(repeating: 0, count: g.dA.count)
            g.dB.pointer.update(repeating: 0, count: g.dB.count)
        }
    }

    /// Every gradient buffer beside its parameter buffer, in a fixed order (layer, target, A then B).
    func zipped(with adapter: LoRAAdapter) -> [(param: FloatBuffer, grad: FloatBuffer)] {
        var out: [(FloatBuffer, FloatBuffer)] = []
        for (l, layer) in adapter.pairs.enumerated() {
            for t in LoRATarget.allCases {
                guard let p = layer[t], let g = pairs[l][t] else { continue }
                out.append((p.A, g.dA))
                out.append((p.B, g.dB))
            }
        }
        return out
    }
}
