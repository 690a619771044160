import BonsaiFormats

/// A file type as llama-quantize names it: one weight type, or a per-tensor mix (the K types' _S and _M).
public enum QuantScheme: String, CaseIterable, Sendable {
    case f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q6_K, iq4_nl, iq4_xs
    case q3_K_S, q3_K_M, q3_K_L, q4_K_S, q4_K_M, q5_K_S, q5_K_M

    /// Any case; q3_K, q4_K and q5_K mean the _M mixes, as in llama-quantize.
    public init?(name: String) {
        let aliases = ["q3_k": QuantScheme.q3_K_M, "q4_k": .q4_K_M, "q5_k": .q5_K_M]
        guard let s = aliases[name.lowercased()] ?? QuantScheme.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() })
        else { return nil }
        self = s
    }

    /// The names --type takes, for help and errors.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") + " (q3_K, q4_K, q5_K: the _M mixes)" }

    /// The type most weights get.
    public var baseType: TensorType {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        case .q5_0: .q5_0
        case .q5_1: .q5_1
        case .q2_K: .q2_K
        case .q3_K_S, .q3_K_M, .q3_K_L: .q3_K
        case .q4_K_S, .q4_K_M: .q4_K
        case .q5_K_S, .q5_K_M: .q5_K
        case .q6_K: .q6_K
        case .iq4_nl: .iq4_nl
        case .iq4_xs: .iq4_xs
        }
    }

    /// llama.cpp's general.file_type (LLAMA_FTYPE_*).
    public var fileType: Int {
        switch self {
        case .q3_K_S: 11
        case .q3_K_M: 12
        case .q3_K_L: 13
        case .q4_K_S: 14
        case .q4_K_M: 15
        case .q5_K_S: 16
        case .q5_K_M: 17
        default: GGUFExport.fileType(baseType)
        }
    }

    /// The type of one tensor, as llama-quantize chooses it for phi2 (each rule seen in llama_model_quantize's
    /// output at 8, 9 and 32 layers, with split and fused q/k/v): 1-D tensors stay f32; output.weight is q6_K
    /// (q8_0 in q8_0 files); a fused attn_qkv follows attn_v's rule. The mixes raise these tensors:
    ///   q2_K            attn_v, attn_output, ffn_down: q3_K
    ///   q3_K_M          attn_v: q5_K in layers 0-1, else q4_K; ffn_down: q5_K below n/16, else q4_K;
    ///                   attn_output: q4_K
    ///   q3_K_L          attn_v, attn_output, ffn_down: q5_K
    ///   q4_K_S          attn_v in layers 0-3, ffn_down below n/8: q5_K
    ///   q4_K_M, q5_K_M  attn_v, ffn_down: q6_K where use_more_bits(layer, n)
    ///   iq4_nl, iq4_xs  ffn_down below n/8: q5_K (llama-quantize's rule without an importance matrix)
    public func type(forTensor name: String, layer: Int?, layers: Int, isMatrix: Bool) -> TensorType {
        guard isMatrix else { return .f32 }
        let base = baseType
        guard base.isQuantized else { return base }
        if name == "output.weight" { return base == .q8_0 ? .q8_0 : .q6_K }
        guard let l = layer else { return base }
        let v = name.hasSuffix("attn_v.weight") || name.hasSuffix("attn_qkv.weight")
        let down = name.hasSuffix("ffn_down.weight"), out = name.hasSuffix("attn_output.weight")
        switch self {
        case .q2_K where v || down || out: return .q3_K
        case .q3_K_M where v: return l < 2 ? .q5_K : .q4_K
        case .q3_K_M where down: return l < layers / 16 ? .q5_K : .q4_K
        case .q3_K_M where out: return .q4_K
        case .q3_K_L where v || down || out: return .q5_K
        case .q4_K_S where v && l < 4 || down && l < layers / 8: return .q5_K
        case .q4_K_M where (v || down) && QuantScheme.useMoreBits(l, layers),
             .q5_K_M where (v || down) && QuantScheme.useMoreBits(l, layers): return .q6_K
        case .iq4_nl where down && l < layers / 8, .iq4_xs where down && l < layers / 8: return .q5_K
        default: return base
        }
    }

    /// `t`, or llama-quantize's replacement when a row of `cols` is not a whole number of its blocks
    /// (the K types' and iq4_xs's 256): a 32-block type of about the same size, else f16.
    public static func fitting(_ t: TensorType, cols: Int) -> TensorType {
        guard t.isQuantized, cols % t.blockSize != 0 else { return t }
        let replacement: TensorType = switch t {
        case .q4_K: .q5_0
        case .q5_K: .q5_1
        case .q6_K: .q8_0
        case .q2_K, .q3_K: .q4_0
        case .iq4_xs: .iq4_nl
        default: t
        }
        return cols % replacement.blockSize == 0 ? replacement : .f16
    }

    static func useMoreBits(_ i: Int, _ n: Int) -> Bool {
        i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
    }
}
