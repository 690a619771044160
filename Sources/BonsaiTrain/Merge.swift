import Bonsai
import BonsaiFormats
import CBonsai
import Foundation

/// Merging an adapter into its base: W ← W + scale · B A for every adapted linear layer, computed in f32
/// from the exactly dequantized W and written back in the tensor's own type (or the one asked for).
/// Everything else is copied as it is.
public enum Merge {
    /// The edit that merges the adapter into one GGUF-named weight, or nil for weights it leaves alone.
    /// A fused attn_qkv weight takes the q, k and v pairs on its three row ranges.
    static func edit(for name: String, adapter a: LoRAAdapter, config c: Phi2Config) -> Quantize.RowEdit? {
        let parts = name.split(separator: ".")
        guard parts.count == 4, parts[0] == "blk", let l = Int(parts[1]), parts[3] == "weight", l < a.pairs.count else { return nil }
        var ranges: [(rows: Range<Int>, pair: LoRAPair)] = []
        if parts[2] == "attn_qkv" {
            let d = c.hidden_size
            for (i, t) in [LoRATarget.q_proj, .k_proj, .v_proj].enumerated() {
                if let p = a.pairs[l][t] { ranges.append((i * d ..< (i + 1) * d, p)) }
            }
        } else if let t = LoRATarget.allCases.first(where: { $0.ggufName == parts[2] }), let p = a.pairs[l][t] {
            ranges.append((0 ..< p.outFeatures, p))
        }
        guard !ranges.isEmpty else { return nil }
        let scale = a.userScale
        return { first, rows, count, cols in
            for (range, p) in ranges {
                let lo = max(range.lowerBound, first), hi = min(range.upperBound, first + count)
                guard lo < hi else { continue }
                bonsai_lora_merge(rows + (lo - first) * cols, Int64(hi - lo), Int64(cols), p.A.pointer,
                                  p.B.pointer + (lo - range.lowerBound) * p.rank, Int32(p.rank), a.scale(of: p) * scale)
            }
        }
    }

    /// base (GGUF or HF folder) + adapter → one GGUF. scheme nil keeps the base's per-tensor types (an HF
    /// base becomes f16, as convert_hf_to_gguf.py would write it).
    public static func toGGUF(base: String, adapter: LoRAAdapter, output: String, scheme: QuantScheme?,
                              progress: ((Int, Int) -> Void)? = nil) throws {
        let config = try Phi2Config.load(path: base)
        try Quantize.run(input: base, output: output, scheme: scheme,
                         edit: { edit(for: $0, adapter: adapter, config: config) }, progress: progress)
    }

    /// HF base folder + adapter → an HF folder transformers loads: the same shards, tensor names and
    /// files (config, tokenizer), adapted weights merged and written in their dtype (or `dtype`: F16, BF16, F32).
    public static func toHF(base: String, adapter: LoRAAdapter, output: String, dtype: String? = nil,
                            progress: ((Int, Int) -> Void)? = nil) throws {
        guard HFRepo.looksLikeRepo(base) else {
            throw TrainError.option("an HF folder output needs an HF folder base (\(base) is not one); write a .gguf instead")
        }
        let fm = FileManager.default
        if fm.fileExists(atPath: output) {
            guard ((try? fm.contentsOfDirectory(atPath: output)) ?? ["?"]).isEmpty else {
                throw TrainError.option("\(output) exists and is not empty; choose a new folder")
            }
            try fm.removeItem(atPath: output)
        }
        let repo = try HFRepo(path: base)
        let config = try Phi2Config(hf: repo.config, path: base + "/config.json")
        let types: [String: TensorType] = ["F16": .f16, "BF16": .bf16, "F32": .f32]
        if let dtype, types[dtype] == nil { throw TrainError.option("--dtype is F16, BF16 or F32, not \(dtype)") }
        let tmp = output + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: tmp)
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)

        // shards as in the base (by the index's weight map, or the single file)
        var shardOf: [String: String] = [:]
        let indexPath = base + "/model.safetensors.index.json"
        if fm.fileExists(atPath: indexPath) {
            shardOf = (try HFRepo.readJSONObject(indexPath)["weight_map"] as? [String: String]) ?? [:]
        } else {
            for n in repo.tensorNames { shardOf[n] = "model.safetensors" }
        }
        let files = Set(shardOf.values).sorted()
        var totalSize = 0, done = 0
        for file in files {
            var w = SafetensorsWriter()
            w.metadata = ["format": "pt"]
            for name in shardOf.keys.sorted() where shardOf[name] == file {
                guard let t = repo.tensor(name) else { continue }
                let outType = dtype.flatMap { types[$0] } ?? t.type
                let change = TensorNames.gguf(fromHF: name).flatMap { edit(for: $0, adapter: adapter, config: config) }
                let dtypeName = types.first { $0.value == outType }?.key ?? "F32"
                guard types.values.contains(outType) else { throw TrainError.option("\(name): dtype \(t.type) cannot be written") }
                let bytes = outType.byteCount(elements: t.elementCount)!
                totalSize += bytes
                w.add(name, dtype: dtypeName, shape: t.shape, byteCount: bytes) { sink in
                    try Quantize.writeConverted(t, as: outType, edit: change, to: sink)
                }
            }
            try w.write(to: tmp + "/" + file)
            done += 1
            progress?(done, files.count)
        }
        if fm.fileExists(atPath: indexPath) {
            var index = try HFRepo.readJSONObject(indexPath)
            index["metadata"] = ["total_size": totalSize]
            let data = try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: tmp + "/model.safetensors.index.json"))
        }
        for f in (try fm.contentsOfDirectory(atPath: base)).sorted()
        where !f.hasSuffix(".safetensors") && f != "model.safetensors.index.json" && !f.hasPrefix(".") {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: base + "/" + f, isDirectory: &isDir), !isDir.boolValue else { continue }
            if f == "config.json", let dtype {
                var c = try HFRepo.readJSONObject(base + "/config.json")
                c["torch_dtype"] = ["F16": "float16", "BF16": "bfloat16", "F32": "float32"][dtype]
                try JSONSerialization.data(withJSONObject: c, options: [.prettyPrinted, .sortedKeys])
                    .write(to: URL(fileURLWithPath: tmp + "/config.json"))
            } else {
                try fm.copyItem(atPath: base + "/" + f, toPath: tmp + "/" + f)
            }
        }
        try fm.moveItem(atPath: tmp, toPath: output)
    }
}
