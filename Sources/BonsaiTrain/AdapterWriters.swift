import Bonsai
import BonsaiFormats
import CBonsai
import Foundation

/// Writing adapters in the two formats the ecosystems load: a PEFT folder for transformers/PEFT and a
/// GGUF LoRA adapter for llama.cpp (`--lora`). Both hold A and B unchanged (f32 unless asked).
public enum AdapterWriter {
    /// PEFT's key for one matrix: base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight
    public static func peftKey(layer l: Int, _ t: LoRATarget, _ half: String) -> String {
        "base_model.model.model.layers.\(l).\(t.hfModule).lora_\(half).weight"
    }

    /// adapter_config.json + adapter_model.safetensors in `dir` (created if needed). PeftModel.from_pretrained
    /// loads it onto the HF model named by `baseModel`.
    public static func writePEFT(_ a: LoRAAdapter, to dir: String, baseModel: String, dropout: Float = 0) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var st = SafetensorsWriter()
        st.metadata = ["format": "pt"]
        var layersUsed: [Int] = []
        for (l, layer) in a.pairs.enumerated() where !layer.isEmpty {
            layersUsed.append(l)
            for (t, p) in layer {
                st.add(peftKey(layer: l, t, "A"), shape: [p.rank, p.inFeatures], floats: p.A.array)
                st.add(peftKey(layer: l, t, "B"), shape: [p.outFeatures, p.rank], floats: p.B.array)
            }
        }
        try st.write(to: dir + "/adapter_model.safetensors")
        let allLayers = layersUsed.count == a.pairs.count
        let config: [String: Any] = [
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": baseModel,
            "r": a.rank,
            "lora_alpha": a.alpha.rounded() == a.alpha ? Int(a.alpha) as Any : a.alpha as Any,
            "lora_dropout": dropout,
            "target_modules": a.targets.map(\.rawValue).sorted(),
            "layers_to_transform": allLayers ? NSNull() : layersUsed as Any,
            "layers_pattern": NSNull(),
            "bias": "none",
            "fan_in_fan_out": false,
            "use_rslora": a.useRSLoRA,
            "use_dora": false,
            "init_lora_weights": true,
            "inference_mode": true,
            "modules_to_save": NSNull(),
            "rank_pattern": [String: Any](),
            "alpha_pattern": [String: Any](),
            "revision": NSNull(),
        ]
        let json = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        let out = try AtomicFileWriter(path: dir + "/adapter_config.json")
        try out.write([UInt8](json) + [0x0a])
        try out.commit()
    }

    /// A llama.cpp LoRA adapter, laid out as convert_lora_to_gguf.py writes one: general.type = adapter,
    /// adapter.type = lora, adapter.lora.alpha; blk.N.<tensor>.weight.lora_a ne=[in, r] and .lora_b
    /// ne=[r, out], in PEFT's (alphabetical) key order. `type` is f32 or f16.
    public static func writeGGUF(_ a: LoRAAdapter, to path: String, name: String, type: TensorType = .f32) throws {
        guard type == .f32 || type == .f16 else { throw TrainError.option("GGUF adapters are written as f32 or f16, not \(type)") }
        var w = GGUFWriter()
        w.set("general.architecture", .string("phi2"))
        w.set("general.type", .string("adapter"))
        w.set("adapter.type", .string("lora"))
        w.set("general.name", .string(name))
        // llama.cpp scales by alpha / r; rsLoRA's alpha / sqrt(r) is the same with alpha · sqrt(r)
        w.set("adapter.lora.alpha", .float32(a.useRSLoRA ? a.alpha * Float(a.rank).squareRoot() : a.alpha))
        w.set("general.quantization_version", .uint32(2))
        // PEFT's keys sorted as strings (layers.10 before layers.2), the order the converter walks them in
        var entries: [(key: String, l: Int, t: LoRATarget)] = []
        for (l, layer) in a.pairs.enumerated() { for t in layer.keys { entries.append((peftKey(layer: l, t, "A"), l, t)) } }
        for e in entries.sorted(by: { $0.key < $1.key }) {
            let p = a.pairs[e.l][e.t]!
            let base = "blk.\(e.l).\(e.t.ggufName).weight"
            w.tensors.append(tensor(base + ".lora_a", p.A, ne: [p.inFeatures, p.rank], type: type))
            w.tensors.append(tensor(base + ".lora_b", p.B, ne: [p.rank, p.outFeatures], type: type))
        }
        try w.write(to: path)
    }

    private static func tensor(_ name: String, _ buf: FloatBuffer, ne: [Int], type: TensorType) -> GGUFWriter.Tensor {
        GGUFWriter.Tensor(name: name, type: type, ne: ne) { out in
            if type == .f32 {
                try out.write(UnsafeRawBufferPointer(start: buf.pointer, count: buf.count * 4))
            } else {
                let halves = (0 ..< buf.count).map { bonsai_f32_to_f16(buf[$0]) }
                try halves.withUnsafeBytes { try out.write($0) }
            }
        }
    }
}
