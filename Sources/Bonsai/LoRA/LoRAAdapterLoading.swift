import BonsaiFormats
import Foundation

/// Reading adapters: a PEFT folder (adapter_config.json + adapter_model.safetensors) or a llama.cpp
/// GGUF LoRA adapter (convert_lora_to_gguf.py's output, or ours).
extension LoRAAdapter {
    public static func load(path: String, config c: Phi2Config) throws -> LoRAAdapter {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw FormatError.io(path: path, reason: "no such adapter file or folder")
        }
        return isDir.boolValue ? try loadPEFT(dir: path, config: c) : try loadGGUF(path: path, config: c)
    }

    /// A PEFT LoRA folder. Keys: base_model.model.model.layers.N.<module>.lora_A.weight / lora_B.weight.
    static func loadPEFT(dir: String, config c: Phi2Config) throws -> LoRAAdapter {
        let configPath = dir + "/adapter_config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw FormatError.io(path: configPath, reason: "missing: a PEFT adapter folder has adapter_config.json")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw FormatError.malformed(path: configPath, reason: "not a JSON object")
        }
        func bad(_ reason: String) -> Error { FormatError.unsupported(path: configPath, reason: reason) }
        let peftType = json["peft_type"] as? String ?? "LORA"
        guard peftType == "LORA" else { throw bad("peft_type \(peftType); only LORA adapters are supported") }
        guard let r = (json["r"] as? NSNumber)?.intValue, r > 0,
              let alpha = (json["lora_alpha"] as? NSNumber)?.floatValue else {
            throw FormatError.malformed(path: configPath, reason: "needs positive \"r\" and \"lora_alpha\"")
        }
        if json["use_dora"] as? Bool == true { throw bad("DoRA adapters (use_dora) are not supported") }
        if json["fan_in_fan_out"] as? Bool == true { throw bad("fan_in_fan_out adapters are not supported") }
        if let bias = json["bias"] as? String, bias != "none" { throw bad("bias \"\(bias)\": only bias \"none\" is supported") }
        if let m = json["modules_to_save"] as? [Any], !m.isEmpty { throw bad("modules_to_save is not supported") }
        for key in ["alpha_pattern", "rank_pattern"] {
            if let p = json[key] as? [String: Any], !p.isEmpty { throw bad("\(key) is not supported") }
        }
        let rslora = json["use_rslora"] as? Bool ?? false

        let weightsPath = dir + "/adapter_model.safetensors"
        guard FileManager.default.fileExists(atPath: weightsPath) else {
            let bin = FileManager.default.fileExists(atPath: dir + "/adapter_model.bin")
            throw FormatError.io(path: weightsPath, reason: bin
                ? "missing (adapter_model.bin is a pickle; save the adapter with safe_serialization=True)"
                : "missing")
        }
        let st = try SafetensorsFile(path: weightsPath)
        var found: [String: TensorRef] = [:]   // "<layer>.<target>.A|B"
        for name in st.names {
            var key = name
            for prefix in ["base_model.model.", "base_model."] where key.hasPrefix(prefix) { key.removeFirst(prefix.count) }
            // model.layers.N.<self_attn|mlp>.<module>.lora_A.weight
            let parts = key.split(separator: ".").map(String.init)
            guard parts.count == 7, parts[0] == "model", parts[1] == "layers", let l = Int(parts[2]),
                  let target = LoRATarget(rawValue: parts[4]), target.hfModule == parts[3] + "." + parts[4],
                  parts[5] == "lora_A" || parts[5] == "lora_B", parts[6] == "weight" else {
                throw FormatError.unsupported(path: weightsPath, reason: "tensor \(name) is not a LoRA weight of a PHI-2 linear layer")
            }
            found["\(l).\(target.rawValue).\(parts[5] == "lora_A" ? "A" : "B")"] = st.tensor(name)
        }
        return try assemble(found, path: weightsPath, config: c, alpha: alpha, rank: r, rslora: rslora)
    }

    /// A GGUF adapter: general.type = adapter, adapter.type = lora, adapter.lora.alpha, and tensors
    /// blk.N.<name>.weight.lora_a [in, r] / .lora_b [r, out]. A fused attn_qkv adapter is split into q, k, v
    /// pairs that share A.
    static func loadGGUF(path: String, config c: Phi2Config) throws -> LoRAAdapter {
        let g = try GGUFFile(path: path)
        func bad(_ reason: String) -> Error { FormatError.unsupported(path: path, reason: reason) }
        guard g["general.type"]?.string == "adapter", g["adapter.type"]?.string == "lora" else {
            throw bad("not a LoRA adapter (general.type = \(g["general.type"]?.string ?? "none"), adapter.type = \(g["adapter.type"]?.string ?? "none"))")
        }
        if let arch = g.architecture, arch != "phi2" {
            throw ModelError.wrongArchitecture(path: path, found: arch)
        }
        guard let alpha = g["adapter.lora.alpha"]?.double else { throw bad("adapter.lora.alpha is missing") }
        var found: [String: TensorRef] = [:]
        for t in g.tensors {
            let parts = t.name.split(separator: ".").map(String.init)   // blk N name weight lora_a
            guard parts.count == 5, parts[0] == "blk", let l = Int(parts[1]), parts[3] == "weight",
                  parts[4] == "lora_a" || parts[4] == "lora_b" else {
                throw bad("tensor \(t.name) is not a LoRA tensor of a PHI-2 block")
            }
            let half = parts[4] == "lora_a" ? "A" : "B"
            if parts[2] == "attn_qkv" {
                found["\(l).qkv.\(half)"] = t
            } else if let target = LoRATarget.allCases.first(where: { $0.ggufName == parts[2] }) {
                found["\(l).\(target.rawValue).\(half)"] = t
            } else {
                throw bad("tensor \(t.name): \(parts[2]) is not a layer an adapter can target")
            }
        }
        let d = c.hidden_size
        var splitB: [String: [Float]] = [:]
        for l in 0 ..< c.num_hidden_layers {
            guard let a = found.removeValue(forKey: "\(l).qkv.A"), let b = found.removeValue(forKey: "\(l).qkv.B") else { continue }
            guard b.ne.count == 2, b.ne[1] == 3 * d, let bf = b.floats() else {
                throw bad("tensor \(b.name): shape \(b.ne), expected [r, \(3 * d)]")
            }
            let r = b.ne[0]
            for (i, target) in [LoRATarget.q_proj, .k_proj, .v_proj].enumerated() {
                found["\(l).\(target.rawValue).A"] = a
                found["\(l).\(target.rawValue).B"] = b
                splitB["\(l).\(target.rawValue)"] = Array(bf[(i * d * r) ..< ((i + 1) * d * r)])
            }
        }
        return try assemble(found, path: path, config: c, alpha: Float(alpha), rank: nil, rslora: false, splitB: splitB)
    }

    /// Pairs from tensors keyed "<layer>.<target>.A|B", every shape checked against the model.
    static func assemble(_ found: [String: TensorRef], path: String, config c: Phi2Config, alpha: Float, rank: Int?,
                         rslora: Bool, splitB: [String: [Float]] = [:]) throws -> LoRAAdapter {
        var pairs = [[LoRATarget: LoRAPair]](repeating: [:], count: c.num_hidden_layers)
        var ranks = Set<Int>()
        for (key, a) in found where key.hasSuffix(".A") {
            let parts = key.split(separator: ".")
            let l = Int(parts[0])!, target = LoRATarget(rawValue: String(parts[1]))!
            guard l < c.num_hidden_layers else {
                throw FormatError.unsupported(path: path, reason: "adapter has layer \(l); the model has \(c.num_hidden_layers)")
            }
            guard let b = found["\(l).\(target.rawValue).B"] else {
                throw FormatError.malformed(path: path, reason: "\(a.name) has no matching lora_B / lora_b")
            }
            let (inF, outF) = target.shape(c)
            let r = a.rows
            guard r <= LoRAAdapter.maxRank else {
                throw FormatError.unsupported(path: path, reason: "\(a.name): rank \(r) is above the supported \(LoRAAdapter.maxRank)")
            }
            guard a.ne.count == 2, a.ne[0] == inF, r > 0, let af = a.floats() else {
                throw FormatError.malformed(path: path, reason: "\(a.name): shape \(a.shape), expected [r, \(inF)]")
            }
            let bf: [Float]
            if let slice = splitB["\(l).\(target.rawValue)"] {
                bf = slice
            } else {
                guard b.ne == [r, outF], let f = b.floats() else {
                    throw FormatError.malformed(path: path, reason: "\(b.name): shape \(b.shape), expected [\(outF), \(r)]")
                }
                bf = f
            }
            ranks.insert(r)
            pairs[l][target] = LoRAPair(rank: r, inFeatures: inF, outFeatures: outF, A: FloatBuffer(af), B: FloatBuffer(bf))
        }
        for key in found.keys where key.hasSuffix(".B") && found[String(key.dropLast()) + "A"] == nil {
            throw FormatError.malformed(path: path, reason: "\(found[key]!.name) has no matching lora_A / lora_a")
        }
        guard let r = rank ?? ranks.max() else { throw FormatError.malformed(path: path, reason: "the adapter has no LoRA tensors") }
        if let rank, ranks != [rank] {
            throw FormatError.malformed(path: path, reason: "tensor ranks \(ranks.sorted()) differ from r = \(rank) in adapter_config.json")
        }
        return LoRAAdapter(rank: r, alpha: alpha, useRSLoRA: rslora, pairs: pairs)
    }
}
