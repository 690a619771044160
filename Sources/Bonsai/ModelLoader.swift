import BonsaiFormats
import BonsaiTokenizer
import Foundation

/// Where weights come from, by GGUF tensor name.
protocol WeightSource {
    var path: String { get }
    func tensor(_ ggufName: String) -> TensorRef?
}

extension GGUFFile: WeightSource {}

/// A Hugging Face folder seen through the GGUF names (the name table is TensorNames).
struct HFWeightSource: WeightSource {
    let repo: HFRepo
    var path: String { repo.path }
    func tensor(_ ggufName: String) -> TensorRef? {
        TensorNames.hf(fromGGUF: ggufName).flatMap { repo.tensor($0) }
    }
}

/// A model ready to run: weights, tokenizer, and what it was loaded from.
public struct LoadedModel: @unchecked Sendable {
    public let model: Phi2
    public let tokenizer: Tokenizer
    public let path: String
    /// "GGUF v3 q4_0" or "Hugging Face safetensors (f16)", for status lines.
    public let formatDescription: String
    /// The GGUF file, when the model came from one (for `info`).
    public let gguf: GGUFFile?
}

public enum ModelLoader {
    public struct Options: Sendable {
        /// Re-encode the linear weights while loading (safetensors: f16 → q8_0/q4_0...).
        public var quantize: TensorType? = nil
        public init(quantize: TensorType? = nil) { self.quantize = quantize }
    }

    /// Loads a GGUF file or a Hugging Face folder.
    public static func load(path: String, options: Options = Options()) throws -> LoadedModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw FormatError.io(path: path, reason: "no such file or directory")
        }
        if let q = options.quantize, !q.canRun || q.blockSize == 0 {
            throw ModelError.invalidOption("cannot quantize to \(q)")
        }
        if isDir.boolValue {
            guard HFRepo.looksLikeRepo(path) else {
                throw FormatError.io(path: path, reason: "a folder without config.json is not a Hugging Face model")
            }
            let repo = try HFRepo(path: path)
            let config = try Phi2Config(hf: repo.config, path: path + "/config.json")
            let tokenizer = try Tokenizer(hfRepo: path)
            let model = try build(config: config, source: HFWeightSource(repo: repo), quantize: options.quantize)
            let type = model.layers.first?.fc1.type.description ?? "?"
            return LoadedModel(model: model, tokenizer: tokenizer, path: path,
                               formatDescription: "Hugging Face safetensors, weights as \(type)", gguf: nil)
        }
        let gguf = try GGUFFile(path: path)   // pages map on first read (MappedFile says why)
        let config = try Phi2Config(gguf: gguf)
        let tokenizer = try Tokenizer(gguf: gguf)
        let model = try build(config: config, source: gguf, quantize: options.quantize)
        let type = model.layers.first?.fc1.type.description ?? "?"
        return LoadedModel(model: model, tokenizer: tokenizer, path: path,
                           formatDescription: "GGUF v\(gguf.version), \(type)", gguf: gguf)
    }

    static func build(config c: Phi2Config, source: WeightSource, quantize: TensorType?) throws -> Phi2 {
        let path = source.path
        func tensor(_ name: String) throws -> TensorRef {
            guard let t = source.tensor(name) else { throw ModelError.missingTensor(path: path, name: name) }
            guard t.type.canRun else {
                throw ModelError.badTensor(path: path, name: name, reason: "type \(t.type) is not supported")
            }
            return t
        }
        func matrix(_ name: String, rows: Int, cols: Int, requantize: Bool = true) throws -> QuantizedMatrix {
            let t = try tensor(name)
            guard t.ne == [cols, rows] else {
                throw ModelError.badTensor(path: path, name: name, reason: "shape \(t.shape), expected [\(rows), \(cols)]")
            }
            let m = QuantizedMatrix(tensor: t)
            if requantize, let q = quantize, !t.type.isQuantized, cols % q.blockSize == 0 { return m.converted(to: q) }
            return m
        }
        func vector(_ name: String, count: Int) throws -> FloatBuffer {
            let t = try tensor(name)
            guard t.elementCount == count, let v = t.floats() else {
                throw ModelError.badTensor(path: path, name: name, reason: "shape \(t.shape), expected [\(count)]")
            }
            return FloatBuffer(v)
        }
        let d = c.hidden_size, ff = c.intermediate_size
        var layers: [Phi2Block] = []
        for l in 0 ..< c.num_hidden_layers {
            let p = "blk.\(l)."
            let q, k, v: QuantizedMatrix
            let qb, kb, vb: FloatBuffer
            if source.tensor(p + "attn_q.weight") == nil, source.tensor(p + TensorNames.fusedQKV.weight) != nil {
                // older files: one [3d, d] weight, rows q then k then v
                let qkv = try matrix(p + TensorNames.fusedQKV.weight, rows: 3 * d, cols: d)
                (q, k, v) = (qkv.rows(0 ..< d), qkv.rows(d ..< 2 * d), qkv.rows(2 * d ..< 3 * d))
                let bias = try vector(p + TensorNames.fusedQKV.bias, count: 3 * d).array
                (qb, kb, vb) = (FloatBuffer(Array(bias[0 ..< d])), FloatBuffer(Array(bias[d ..< 2 * d])),
                                FloatBuffer(Array(bias[2 * d ..< 3 * d])))
            } else {
                q = try matrix(p + "attn_q.weight", rows: d, cols: d)
                k = try matrix(p + "attn_k.weight", rows: d, cols: d)
                v = try matrix(p + "attn_v.weight", rows: d, cols: d)
                qb = try vector(p + "attn_q.bias", count: d)
                kb = try vector(p + "attn_k.bias", count: d)
                vb = try vector(p + "attn_v.bias", count: d)
            }
            layers.append(Phi2Block(
                input_layernorm_weight: try vector(p + "attn_norm.weight", count: d),
                input_layernorm_bias: try vector(p + "attn_norm.bias", count: d),
                q_proj: q, q_proj_bias: qb, k_proj: k, k_proj_bias: kb, v_proj: v, v_proj_bias: vb,
                dense: try matrix(p + "attn_output.weight", rows: d, cols: d),
                dense_bias: try vector(p + "attn_output.bias", count: d),
                fc1: try matrix(p + "ffn_up.weight", rows: ff, cols: d),
                fc1_bias: try vector(p + "ffn_up.bias", count: ff),
                fc2: try matrix(p + "ffn_down.weight", rows: d, cols: ff),
                fc2_bias: try vector(p + "ffn_down.bias", count: d)))
        }
        return Phi2(config: c,
                    embed_tokens: try matrix("token_embd.weight", rows: c.vocab_size, cols: d),
                    layers: layers,
                    final_layernorm_weight: try vector("output_norm.weight", count: d),
                    final_layernorm_bias: try vector("output_norm.bias", count: d),
                    lm_head: try matrix("output.weight", rows: c.vocab_size, cols: d),
                    lm_head_bias: try vector("output.bias", count: c.vocab_size))
    }
}
