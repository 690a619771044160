import CBonsai

/// The linear layers of a PHI-2 block a LoRA adapter can sit beside, with both spellings.
public enum LoRATarget: String, CaseIterable, Sendable {
    case q_proj, k_proj, v_proj, dense, fc1, fc2

    /// Module path inside a layer, as PEFT writes it ("self_attn.q_proj").
    public var hfModule: String {
        switch self {
        case .q_proj, .k_proj, .v_proj, .dense: return "self_attn." + rawValue
        case .fc1, .fc2: return "mlp." + rawValue
        }
    }

    /// llama.cpp's tensor name inside a block ("attn_q").
    public var ggufName: String {
        switch self {
        case .q_proj: return "attn_q"
        case .k_proj: return "attn_k"
        case .v_proj: return "attn_v"
        case .dense: return "attn_output"
        case .fc1: return "ffn_up"
        case .fc2: return "ffn_down"
        }
    }

    /// Accepts either spelling: "q_proj" or "attn_q", "fc1" or "ffn_up", "self_attn.dense"...
    public init?(name: String) {
        let n = name.split(separator: ".").last.map(String.init) ?? name
        guard let t = LoRATarget(rawValue: n) ?? LoRATarget.allCases.first(where: { $0.ggufName == n }) else { return nil }
        self = t
    }

    /// (in, out) features of the wrapped layer.
    public func shape(_ c: Phi2Config) -> (in: Int, out: Int) {
        switch self {
        case .q_proj, .k_proj, .v_proj, .dense: return (c.hidden_size, c.hidden_size)
        case .fc1: return (c.hidden_size, c.intermediate_size)
        case .fc2: return (c.intermediate_size, c.hidden_size)
        }
    }
}

/// One low-rank pair: ΔW = scale · B A, A [rank, in] and B [out, rank] (PEFT's lora_A / lora_B; the GGUF
/// adapter's lora_a ne=[in, rank] and lora_b ne=[rank, out] are the same bytes).
public final class LoRAPair: @unchecked Sendable {
    public let rank: Int, inFeatures: Int, outFeatures: Int
    public let A: FloatBuffer
    public let B: FloatBuffer

    public init(rank: Int, inFeatures: Int, outFeatures: Int, A: FloatBuffer, B: FloatBuffer) {
        precondition(A.count == rank * inFeatures && B.count == outFeatures * rank)
        self.rank = rank
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.A = A
        self.B = B
    }
}

/// A LoRA adapter for a PHI-2 model: pairs per layer and target, one alpha.
/// The effective scale is alpha / rank (alpha / sqrt(rank) with rsLoRA) times the user's --lora-scale.
public final class LoRAAdapter: @unchecked Sendable {
    /// Ranks above this are refused (real adapters use 4–256; the kernels keep r floats per token on the stack).
    public static let maxRank = 4096
    public let rank: Int
    public let alpha: Float
    public let useRSLoRA: Bool
    /// pairs[layer][target]; a missing entry means that layer/target has no adapter.
    public let pairs: [[LoRATarget: LoRAPair]]
    /// Multiplier applied at run time (llama.cpp's --lora-scaled).
    public var userScale: Float = 1

    public init(rank: Int, alpha: Float, useRSLoRA: Bool = false, pairs: [[LoRATarget: LoRAPair]]) {
        self.rank = rank
        self.alpha = alpha
        self.useRSLoRA = useRSLoRA
        self.pairs = pairs
    }

    /// alpha / r (or alpha / sqrt(r)): the factor in front of B A. A pair's own rank counts (llama.cpp
    /// and PEFT's rank_pattern allow ranks to differ per tensor).
    public func scale(of p: LoRAPair) -> Float {
        useRSLoRA ? alpha / Float(p.rank).squareRoot() : alpha / Float(p.rank)
    }

    public var targets: Set<LoRATarget> { Set(pairs.flatMap(\.keys)) }
    public var parameterCount: Int { pairs.flatMap(\.values).reduce(0) { $0 + $1.A.count + $1.B.count } }

    /// y [T, out] (rows yStride apart) += scale · (x A^T) B^T for the pair at (layer, target), if any.
    public func apply(layer: Int, _ target: LoRATarget, x: UnsafePointer<Float>, count T: Int,
                      y: UnsafeMutablePointer<Float>, yStride: Int) {
        guard layer < pairs.count, let p = pairs[layer][target] else { return }
        bonsai_lora_forward(y, Int64(yStride), nil, x, p.A.pointer, p.B.pointer, Int64(T), Int64(p.inFeatures),
                            Int64(p.outFeatures), Int32(p.rank), scale(of: p) * userScale, 0, 0)
    }
}
