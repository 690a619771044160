import BonsaiFormats

/// A file type as llama-quantize names it: one weight type, or a per-tensor mix (the K types' _S and _M).
public enum QuantScheme: String, CaseIterable, Sendable {
    case f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q6_K
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
        }
    }

    /// llama.cpp's general.file_type (LLAMA_FTYPE_*).
    public var fileType: Int {
        switch self {
        case .q3_K_M: 12
        case .q3_K_L: 13
        case .q4_K_M: 15
        case .q5_K_M: 17
        case .q3_K_S: 11
        case .q4_K_S: 14
        case .q5_K_S: 16
        default: GGUFExport.fileType(baseType)
        }
    }

    /// The type of one tensor, following llama-quantize for phi2: 1-D tensors stay f32; with a
    /// quantized scheme the output matrix gets q6_K (q8_0 keeps q8_0); the _M mixes give attn_v and
    /// ffn_down q6_K in the layers where llama.cpp's use_more_bits(layer, n_layers) holds; q4_K_S gives
    /// q5_K to attn_v of the first 4 layers and ffn_down of the first n_layers / 8 (seen in
    /// llama_model_quantize's output for 8 and 32 layers; q5_K_S and q3_K_S have no such step);
    /// q2_K gives q3_K to attn_v, attn_output and ffn_down in every layer;
    /// q3_K_M gives q4_K to attn_output, attn_v and ffn_down, q5_K to attn_v of layers 0-1 and ffn_down of
    /// the layers below n/16 (seen at 8, 9 and 32 layers); q3_K_L gives q5_K to all three.
    public func type(forTensor name: String, layer: Int?, layers: Int, isMatrix: Bool) -> TensorType {
        guard isMatrix else { return .f32 }
        let base = baseType
        guard base.isQuantized else { return base }
        if name == "output.weight" { return base == .q8_0 ? .q8_0 : .q6_K }
        guard let l = layer else { return base }
        // a fused attn_qkv (older phi-2 files) takes attn_v's rules, as llama-quantize does today
        let attnV = name.hasSuffix("attn_v.weight") || name.hasSuffix("attn_qkv.weight"), ffnDown = name.hasSuffix("ffn_down.weight")
        if self == .q4_K_M || self == .q5_K_M, attnV || ffnDown, QuantScheme.useMoreBits(l, layers) { return .q6_K }
        if self == .q4_K_S, attnV && l < 4 || ffnDown && l < layers / 8 { return .q5_K }
        if self == .q2_K, attnV || ffnDown || name.hasSuffix("attn_output.weight") { return .q3_K }
        if self == .q3_K_L, attnV || ffnDown || name.hasSuffix("attn_output.weight") { return .q5_K }
        if self == .q3_K_M {
            if attnV { return l < 2 ? .q5_K : .q4_K }
            if ffnDown { return l < layers / 16 ? .q5_K : .q4_K }
            if name.hasSuffix("attn_output.weight") { return .q4_K }
        }
        return base
    }

    /// `t`, or llama-quantize's replacement when a row of `cols` is not a whole number of its blocks
    /// (the K types' 256): a 32-block type of about the same size, else f16.
    public static func fitting(_ t: TensorType, cols: Int) -> TensorType {
        guard t.isQuantized, cols % t.blockSize != 0 else { return t }
        let replacement: TensorType = switch t {
        case .q4_K: .q5_0
        case .q5_K: .q5_1
        case .q6_K: .q8_0
        case .q2_K, .q3_K: .q4_0
        default: t
        }
        return cols % replacement.blockSize == 0 ? replacement : .f16
    }

    static func useMoreBits(_ i: Int, _ n: Int) -> Bool {
        i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
    }
}
