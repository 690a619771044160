import Foundation

/// A .safetensors file, memory-mapped: u64 header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the data.
public final class SafetensorsFile: @unchecked Sendable {
    public static let maxHeaderBytes = 100 << 20

    static let dtypes: [String: TensorType] = [
        "F32": .f32, "F16": .f16, "BF16": .bf16, "F64": TensorType(rawValue: 28),
        "I8": TensorType(rawValue: 24), "I16": TensorType(rawValue: 25), "I32": TensorType(rawValue: 26),
        "I64": TensorType(rawValue: 27),
        "U8": TensorType(rawValue: 24),   // raw bytes: read like I8 (same size, no ggml type of its own)
    ]

    public let path: String
    public let file: MappedFile
    public let metadata: [String: String]
    private let entries: [String: (type: TensorType, ne: [Int], offset: Int, size: Int)]
    /// Tensor names in data order.
    public let names: [String]
    private let dataStart: Int

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        let path = file.path
        self.path = path
        self.file = file
        var r = ByteReader(file.bytes, path: path)
        let headerLen = try r.read(UInt64.self, "header length")
        guard headerLen <= UInt64(min(r.remaining, SafetensorsFile.maxHeaderBytes)) else {
            throw FormatError.malformed(path: path, reason: "header length \(headerLen) is larger than the file allows")
        }
        let headerData = Data(UnsafeRawBufferPointer(rebasing: file.bytes[8 ..< 8 + Int(headerLen)]))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw FormatError.malformed(path: path, reason: "header is not a JSON object")
        }
        dataStart = 8 + Int(headerLen)
        let dataSize = file.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [String: (TensorType, [Int], Int, Int)] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                for (k, v) in (value as? [String: Any]) ?? [:] { metadata[k] = v as? String ?? "\(v)" }
                continue
            }
            guard let e = value as? [String: Any], let dtype = e["dtype"] as? String,
                  let shape = e["shape"] as? [Any], let offsets = e["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = (offsets[0] as? NSNumber)?.intValue, let end = (offsets[1] as? NSNumber)?.intValue
            else {
                throw FormatError.malformed(path: path, reason: "tensor \(name): entry needs dtype, shape and data_offsets")
            }
            guard let type = SafetensorsFile.dtypes[dtype] else {
                throw FormatError.unsupported(path: path, reason: "tensor \(name) has dtype \(dtype)")
            }
            let dims = shape.compactMap { ($0 as? NSNumber)?.intValue }
            guard dims.count == shape.count, dims.count <= 8, let n = checkedElementCount(dims),
                  let size = type.byteCount(elements: n) else {
                throw FormatError.malformed(path: path, reason: "tensor \(name): bad shape \(shape)")
            }
            guard begin >= 0, end >= begin, end <= dataSize, end - begin == size else {
                throw FormatError.malformed(path: path, reason: "tensor \(name): data_offsets [\(begin), \(end)] do not fit shape \(dims) of \(dtype) in \(dataSize) data bytes")
            }
            entries[name] = (type, dims.isEmpty ? [1] : dims.reversed(), begin, size)
        }
        self.metadata = metadata
        self.entries = entries
        names = entries.sorted { $0.value.2 < $1.value.2 }.map(\.key)
    }

    public func tensor(_ name: String) -> TensorRef? {
        guard let e = entries[name] else { return nil }
        return TensorRef(name: name, type: e.type, ne: e.ne,
                         data: file.bytes.baseAddress! + dataStart + e.offset, byteCount: e.size, file: file)
    }

    /// The tensor's elements as f32 (F32/F16/BF16 only).
    public func floats(_ name: String) -> [Float]? {
        tensor(name).flatMap { $0.floats() }
    }
}

extension TensorRef {
    /// Elements widened to f32 (any type that dequantizes), or nil.
    public func floats() -> [Float]? {
        guard type.canRun else { return nil }
        return [Float](unsafeUninitializedCapacity: elementCount) { buf, n in
            _ = bonsaiDequantize(type, data, buf.baseAddress!, elementCount)
            n = elementCount
        }
    }

    /// Elements of an integer tensor (I8...I64) widened to Int.
    public func ints() -> [Int]? {
        switch type.rawValue {
        case 24: return (0 ..< elementCount).map { Int(data.loadUnaligned(fromByteOffset: $0, as: Int8.self)) }
        case 25: return (0 ..< elementCount).map { Int(data.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self)) }
        case 26: return (0 ..< elementCount).map { Int(data.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
        case 27: return (0 ..< elementCount).map { Int(data.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        default: return nil
        }
    }
}

/// Writes .safetensors files (atomically). A tensor's bytes are either held in memory or produced by a
/// closure while the file is written (so a multi-GB shard never sits in memory at once).
public struct SafetensorsWriter {
    public struct Tensor {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        public let byteCount: Int
        /// Writes exactly byteCount bytes.
        public let write: (AtomicFileWriter) throws -> Void
    }

    public var tensors: [Tensor] = []
    public var metadata: [String: String] = [:]

    public init() {}

    public mutating func add(_ name: String, shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count)
        let bytes = floats.withUnsafeBytes { Array($0) }
        tensors.append(Tensor(name: name, dtype: "F32", shape: shape, byteCount: bytes.count) { try $0.write(bytes) })
    }

    /// A tensor written by `write` (dtype "F32", "F16", "BF16", ...; byteCount must be exact).
    public mutating func add(_ name: String, dtype: String, shape: [Int], byteCount: Int,
                             write: @escaping (AtomicFileWriter) throws -> Void) {
        tensors.append(Tensor(name: name, dtype: dtype, shape: shape, byteCount: byteCount, write: write))
    }

    public func write(to path: String) throws {
        // Keys sorted, as the safetensors library writes them; offsets follow that order.
        let sorted = tensors.sorted { $0.name < $1.name }
        var header: [String: Any] = [:]
        var offset = 0
        for t in sorted {
            header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.byteCount]]
            offset += t.byteCount
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }   // pad with spaces to 8-byte alignment
        let out = try AtomicFileWriter(path: path)
        try out.write(UInt64(json.count))
        try out.write([UInt8](json))
        for t in sorted { try t.write(out) }
        try out.commit()
    }
}
