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
        let fm = FileManager.default
        if fm.fileExists(atPath: output) {
            guard ((try? fm.contentsOfDirectory(atPath: output)) ?? ["?"]).isEmpty else {
                throw TrainError.option("\(output) exists and is not empty; choose a new folder")
            }
            try fm.removeItem(atPath: output)
        }
        guard HFRepo.looksLikeRepo(base) else {
            return try ggufToHF(base: base, adapter: adapter, output: output, dtype: dtype ?? "F16", progress: progress)
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

    /// A GGUF base (any type, split or fused q/k/v) → an HF folder: every weight dequantized exactly,
    /// merged, and written as `dtype` under its checkpoint name; config.json and the tokenizer files are
    /// written from the GGUF's metadata. Shards of at most ~4 GB, with an index when there are several.
    static func ggufToHF(base: String, adapter: LoRAAdapter, output: String, dtype: String,
                         progress: ((Int, Int) -> Void)?) throws {
        let types: [String: TensorType] = ["F16": .f16, "BF16": .bf16, "F32": .f32]
        guard let type = types[dtype] else { throw TrainError.option("--dtype is F16, BF16 or F32, not \(dtype)") }
        let loaded = try ModelLoader.load(path: base)
        let m = loaded.model, c = m.config
        enum Source { case matrix(QuantizedMatrix, gguf: String), vector(FloatBuffer) }
        var tensors: [(name: String, shape: [Int], source: Source)] = []
        func matrix(_ name: String, _ q: QuantizedMatrix, _ gguf: String) { tensors.append((name, [q.rows, q.cols], .matrix(q, gguf: gguf))) }
        func vector(_ name: String, _ v: FloatBuffer) { tensors.append((name, [v.count], .vector(v))) }
        matrix("model.embed_tokens.weight", m.embed_tokens, "token_embd.weight")
        for (l, b) in m.layers.enumerated() {
            let p = "model.layers.\(l).", g = "blk.\(l)."
            vector(p + "input_layernorm.weight", b.input_layernorm_weight)
            vector(p + "input_layernorm.bias", b.input_layernorm_bias)
            for (t, w, bias) in [(LoRATarget.q_proj, b.q_proj, b.q_proj_bias), (.k_proj, b.k_proj, b.k_proj_bias),
                                 (.v_proj, b.v_proj, b.v_proj_bias), (.dense, b.dense, b.dense_bias),
                                 (.fc1, b.fc1, b.fc1_bias), (.fc2, b.fc2, b.fc2_bias)] {
                matrix(p + t.hfModule + ".weight", w, g + t.ggufName + ".weight")
                vector(p + t.hfModule + ".bias", bias)
            }
        }
        vector("model.final_layernorm.weight", m.final_layernorm_weight)
        vector("model.final_layernorm.bias", m.final_layernorm_bias)
        matrix("lm_head.weight", m.lm_head, "output.weight")
        vector("lm_head.bias", m.lm_head_bias)

        // shards in this order, a new one when the current would pass ~4 GB
        let limit = 4 << 30
        var shards: [[Int]] = [[]], size = 0, total = 0
        for (i, t) in tensors.enumerated() {
            let bytes = type.byteCount(elements: t.shape.reduce(1, *))!
            if size > 0, size + bytes > limit { shards.append([]); size = 0 }
            shards[shards.count - 1].append(i)
            size += bytes
            total += bytes
        }
        let fm = FileManager.default
        let tmp = output + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: tmp)
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        var weightMap: [String: String] = [:]
        for (k, shard) in shards.enumerated() {
            let file = shards.count == 1 ? "model.safetensors" : String(format: "model-%05d-of-%05d.safetensors", k + 1, shards.count)
            var w = SafetensorsWriter()
            w.metadata = ["format": "pt"]
            for i in shard {
                let t = tensors[i]
                weightMap[t.name] = file
                w.add(t.name, dtype: dtype, shape: t.shape, byteCount: type.byteCount(elements: t.shape.reduce(1, *))!) { sink in
                    switch t.source {
                    case let .matrix(q, gguf):
                        try writeMatrix(q, as: type, edit: edit(for: gguf, adapter: adapter, config: c), to: sink)
                    case let .vector(v):
                        try writeFloats(v.pointer, v.count, as: type, to: sink)
                    }
                }
            }
            try w.write(to: tmp + "/" + file)
            progress?(k + 1, shards.count)
        }
        func json(_ o: Any, _ name: String) throws {
            try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: tmp + "/" + name))
        }
        if shards.count > 1 { try json(["metadata": ["total_size": total], "weight_map": weightMap], "model.safetensors.index.json") }
        try json(c.hfConfig(torchDtype: ["F16": "float16", "BF16": "bfloat16", "F32": "float32"][dtype]!), "config.json")
        try json(["bos_token_id": loaded.tokenizer.bosID, "eos_token_id": loaded.tokenizer.eosID], "generation_config.json")
        try loaded.tokenizer.writeHFFiles(to: tmp, maxLength: c.max_position_embeddings)
        try fm.moveItem(atPath: tmp, toPath: output)
    }

    /// Rows of a weight dequantized exactly, edited (merged), written as f32/f16/bf16.
    static func writeMatrix(_ q: QuantizedMatrix, as type: TensorType, edit: Quantize.RowEdit?, to sink: AtomicFileWriter) throws {
        let chunk = max(1, (16 << 20) / (q.cols * 4))
        var rows = [Float](repeating: 0, count: min(chunk, q.rows) * q.cols)
        var r = 0
        while r < q.rows {
            let n = min(chunk, q.rows - r)
            try rows.withUnsafeMutableBufferPointer { f in
                for i in 0 ..< n { q.dequantizeRow(r + i, into: f.baseAddress! + i * q.cols) }
                edit?(r, f.baseAddress!, n, q.cols)
                try writeFloats(f.baseAddress!, n * q.cols, as: type, to: sink)
            }
            r += n
        }
    }

    static func writeFloats(_ p: UnsafePointer<Float>, _ count: Int, as type: TensorType, to sink: AtomicFileWriter) throws {
        if type == .f32 { return try sink.write(UnsafeRawBufferPointer(start: p, count: count * 4)) }
        var out = [UInt8](repeating: 0, count: type.byteCount(elements: count)!)
        guard bonsai_quantize_row(Int32(type.rawValue), p, &out, Int64(count)) else {
            throw TrainError.option("cannot write \(type)")
        }
        try sink.write(out)
    }
}
