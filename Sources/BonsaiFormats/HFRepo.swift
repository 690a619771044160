import Foundation

/// A Hugging Face model folder: config.json, model.safetensors or sharded
/// model-0000N-of-0000M.safetensors with model.safetensors.index.json, and tokenizer files.
public final class HFRepo: @unchecked Sendable {
    public let path: String
    public let config: [String: Any]
    private let shards: [String: SafetensorsFile]
    private let weightMap: [String: String]

    public static func looksLikeRepo(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
            && FileManager.default.fileExists(atPath: path + "/config.json")
    }

    public init(path: String) throws {
        self.path = path
        config = try HFRepo.readJSONObject(path + "/config.json")
        let fm = FileManager.default
        let indexPath = path + "/model.safetensors.index.json"
        var shards: [String: SafetensorsFile] = [:]
        var weightMap: [String: String] = [:]
        if fm.fileExists(atPath: indexPath) {
            let index = try HFRepo.readJSONObject(indexPath)
            guard let map = index["weight_map"] as? [String: String] else {
                throw FormatError.malformed(path: indexPath, reason: "no weight_map object")
            }
            for file in Set(map.values) {
                guard !file.contains("/"), file.hasSuffix(".safetensors") else {
                    throw FormatError.malformed(path: indexPath, reason: "weight_map names an odd file \(file)")
                }
                shards[file] = try SafetensorsFile(path: path + "/" + file)
            }
            for (name, file) in map {
                guard shards[file]?.tensor(name) != nil else {
                    throw FormatError.malformed(path: indexPath, reason: "tensor \(name) is not in \(file)")
                }
                weightMap[name] = file
            }
        } else if fm.fileExists(atPath: path + "/model.safetensors") {
            let f = try SafetensorsFile(path: path + "/model.safetensors")
            shards["model.safetensors"] = f
            for name in f.names { weightMap[name] = "model.safetensors" }
        } else {
            throw FormatError.io(path: path, reason: "no model.safetensors or model.safetensors.index.json")
        }
        self.shards = shards
        self.weightMap = weightMap
    }

    public var tensorNames: [String] { weightMap.keys.sorted() }

    /// Tensor names in file order: shards by file name, then by position in the shard (the order in
    /// which llama.cpp's convert_hf_to_gguf.py writes them).
    public var tensorNamesInFileOrder: [String] {
        shards.keys.sorted().flatMap { file in shards[file]!.names.filter { weightMap[$0] == file } }
    }

    public func tensor(_ name: String) -> TensorRef? {
        weightMap[name].flatMap { shards[$0]?.tensor(name) }
    }

    public static func readJSONObject(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FormatError.io(path: path, reason: "cannot read")
        }
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw FormatError.malformed(path: path, reason: "not a JSON object")
        }
        return obj
    }
}
