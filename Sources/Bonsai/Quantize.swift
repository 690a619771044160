import BonsaiFormats
import BonsaiTokenizer
import CBonsai
import Foundation

/// Writing a model in another type, laid out as llama.cpp's own tools lay it out, so files compare
/// byte for byte: a Hugging Face folder becomes what convert_hf_to_gguf.py writes (f32/f16/bf16/q8_0);
/// a GGUF (or a folder, for the other types) becomes what llama-quantize writes.
public enum Quantize {
    /// One tensor of the output: where its data comes from and the type it is written in.
    struct Item {
        let name: String
        let source: TensorRef
        var type: TensorType
    }

    struct Plan {
        var metadata: [(key: String, value: GGUFValue)]
        var items: [Item]
    }

    /// A change made to a weight on its way out (merging a LoRA adapter): rows firstRow ..< firstRow + count
    /// of the tensor, as f32 [count, cols], edited in place.
    public typealias RowEdit = (_ firstRow: Int, _ rows: UnsafeMutablePointer<Float>, _ count: Int, _ cols: Int) -> Void

    /// Writes `input` (HF folder or GGUF) as a GGUF. scheme nil keeps every tensor's type (a GGUF input) or
    /// converts as f16 (a folder). `edit(name)` may return a change for that tensor (by GGUF name).
    public static func run(input: String, output: String, scheme: QuantScheme?, edit: (String) -> RowEdit? = { _ in nil },
                           progress: ((Int, Int) -> Void)? = nil) throws {
        var plan: Plan
        if HFRepo.looksLikeRepo(input) {
            let convertible: Set<QuantScheme> = [.f32, .f16, .bf16, .q8_0]
            let s = scheme ?? .f16
            plan = try convertPlan(hfRepo: input, scheme: convertible.contains(s) ? s : .f16)
            if !convertible.contains(s) { plan = try quantizePlan(plan, scheme: s, path: input) }
        } else {
            let g = try GGUFFile(path: input)
            _ = try Phi2Config(gguf: g)   // refuse other architectures up front
            plan = Plan(metadata: g.metadata, items: g.tensors.map { Item(name: $0.name, source: $0, type: $0.type) })
            if let scheme { plan = try quantizePlan(plan, scheme: scheme, path: input) }
        }
        var w = GGUFWriter()
        w.metadata = plan.metadata
        for item in plan.items {
            let change = edit(item.name)
            guard item.type == item.source.type && change == nil || item.type.canQuantize else {
                throw ModelError.invalidOption("writing \(item.name) as \(item.type) needs a \(item.type) quantizer, which Bonsai does not have (choose another --type)")
            }
            w.tensors.append(.init(name: item.name, type: item.type, ne: item.source.ne) { sink in
                try writeConverted(item.source, as: item.type, edit: change, to: sink)
            })
        }
        try w.write(to: output, progress: progress)
    }

    /// convert_hf_to_gguf.py: its metadata, tensors in the folder's file order, 1-D tensors f32.
    static func convertPlan(hfRepo path: String, scheme: QuantScheme) throws -> Plan {
        let repo = try HFRepo(path: path)
        let config = try Phi2Config(hf: repo.config, path: path + "/config.json")
        let tokenizer = try Tokenizer(hfRepo: path)
        let name = (repo.config["_name_or_path"] as? String).flatMap { $0.split(separator: "/").last.map(String.init) } ?? "phi-2"
        var items: [Item] = []
        for hfName in repo.tensorNamesInFileOrder {
            guard let ggufName = TensorNames.gguf(fromHF: hfName), let t = repo.tensor(hfName) else {
                throw ModelError.badTensor(path: path, name: hfName, reason: "not a PHI-2 tensor name")
            }
            let matrix = t.ne.count == 2 && t.cols % max(scheme.baseType.blockSize, 1) == 0
            items.append(Item(name: ggufName, source: t, type: matrix ? scheme.baseType : .f32))
        }
        return Plan(metadata: GGUFExport.metadata(config: config, tokenizer: tokenizer, name: name, fileType: scheme.fileType),
                    items: items)
    }

    /// llama-quantize: the same metadata with quantization_version and file_type moved to the end,
    /// tensors ordered non-layer first, then by layer, names alphabetical; types from the scheme.
    static func quantizePlan(_ input: Plan, scheme: QuantScheme, path: String) throws -> Plan {
        var metadata = input.metadata.filter { $0.key != "general.quantization_version" && $0.key != "general.file_type" }
        metadata.append(("general.quantization_version", .uint32(2)))
        metadata.append(("general.file_type", .uint32(UInt32(scheme.fileType))))
        let layers = input.items.compactMap { layerOf($0.name) }.max().map { $0 + 1 } ?? 0
        var items = input.items.sorted { (layerOf($0.name) ?? -1, $0.name) < (layerOf($1.name) ?? -1, $1.name) }
        for i in items.indices {
            let it = items[i]
            let type = scheme.type(forTensor: it.name, layer: layerOf(it.name), layers: layers, isMatrix: it.source.ne.count == 2)
            items[i].type = QuantScheme.fitting(type, cols: it.source.cols)
        }
        return Plan(metadata: metadata, items: items)
    }

    static func layerOf(_ name: String) -> Int? {
        guard name.hasPrefix("blk.") else { return nil }
        return Int(name.split(separator: ".")[1])
    }
}

extension Quantize {
    /// Streams a tensor row by row in another type (dequantize → f32 → [edit] → quantize), or copies it.
    public static func writeConverted(_ t: TensorRef, as type: TensorType, edit: RowEdit? = nil, to sink: AtomicFileWriter) throws {
        if let edit { return try writeEdited(t, as: type, edit: edit, to: sink) }
        if t.type == type {
            try sink.write(UnsafeRawBufferPointer(start: t.data, count: t.byteCount))
            return
        }
        // chunks of rows, converted on all cores, then written in order
        let cols = t.cols, srcRow = t.type.byteCount(elements: cols)!, dstRow = type.byteCount(elements: cols)!
        let chunk = max(1, (8 << 20) / max(dstRow, 1))
        var out = [UInt8](repeating: 0, count: min(chunk, t.rows) * dstRow)
        var r = 0
        while r < t.rows {
            let n = min(chunk, t.rows - r)
            guard bonsai_convert_rows(Int32(t.type.rawValue), t.data + r * srcRow, srcRow, Int32(type.rawValue), &out,
                                      Int64(n), Int64(cols)) else {
                throw ModelError.invalidOption("cannot convert \(t.name) from \(t.type) to \(type)")
            }
            try out.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0 ..< n * dstRow])) }
            r += n
        }
    }
}

extension Quantize {
    /// Dequantize a chunk of rows to f32, let `edit` change them, quantize to `type`, write; chunk by chunk.
    static func writeEdited(_ t: TensorRef, as type: TensorType, edit: RowEdit, to sink: AtomicFileWriter) throws {
        let cols = t.cols, srcRow = t.type.byteCount(elements: cols)!, dstRow = type.byteCount(elements: cols)!
        let chunk = max(1, (16 << 20) / (cols * 4))
        var rows = [Float](repeating: 0, count: min(chunk, t.rows) * cols)
        var out = [UInt8](repeating: 0, count: min(chunk, t.rows) * dstRow)
        var r = 0
        while r < t.rows {
            let n = min(chunk, t.rows - r)
            let ok = rows.withUnsafeMutableBufferPointer { f -> Bool in
                guard bonsai_convert_rows(Int32(t.type.rawValue), t.data + r * srcRow, srcRow, Int32(TensorType.f32.rawValue),
                                          f.baseAddress!, Int64(n), Int64(cols)) else { return false }
                edit(r, f.baseAddress!, n, cols)
                return bonsai_convert_rows(Int32(TensorType.f32.rawValue), f.baseAddress!, cols * 4, Int32(type.rawValue), &out,
                                           Int64(n), Int64(cols))
            }
            guard ok else { throw ModelError.invalidOption("cannot convert \(t.name) from \(t.type) to \(type)") }
            try out.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0 ..< n * dstRow])) }
            r += n
        }
    }
}
