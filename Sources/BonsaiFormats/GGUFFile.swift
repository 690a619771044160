/// A GGUF file (v2 or v3), memory-mapped. Metadata is parsed; tensor data is used in place.
///
/// Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata key/values,
/// the tensor infos (name, n_dims, ne[n_dims], type, offset), padding to `general.alignment` (32 by
/// default), then the tensor data. Every count, length and offset is checked against the file.
public final class GGUFFile: @unchecked Sendable {
    public static let defaultAlignment = 32

    public struct TensorInfo: Sendable {
        public let name: String
        public let ne: [Int]
        public let type: TensorType
        /// Relative to the start of the data section.
        public let offset: Int
        public let byteCount: Int
    }

    public let path: String
    public let file: MappedFile
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensorInfos: [TensorInfo]
    public let alignment: Int
    public let dataOffset: Int
    private let metadataIndex: [String: Int]
    private let tensorIndex: [String: Int]

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        let path = file.path
        self.path = path
        self.file = file
        var r = ByteReader(file.bytes, path: path)
        try r.need(4, "magic")
        let magic = try r.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {   // "GGUF" little-endian
            throw FormatError.malformed(path: path, reason: "not a GGUF file (bad magic)")
        }
        version = try r.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            throw FormatError.unsupported(path: path, reason: "GGUF version \(version) (2 and 3 are supported)")
        }
        // A tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes,
        // a key/value at least 8 (key length) + 4 (type) + 1 bytes.
        let nTensors = try r.readCount("tensor count", minBytesEach: 24)
        let nKV = try r.readCount("metadata count", minBytesEach: 13)

        var metadata: [(key: String, value: GGUFValue)] = []
        metadata.reserveCapacity(nKV)
        var metadataIndex: [String: Int] = [:]
        for _ in 0 ..< nKV {
            let key = try r.readString("metadata key")
            let type = try r.read(UInt32.self, "type of \(key)")
            let value = try GGUFFile.readValue(&r, type: type, key: key, depth: 0)
            metadataIndex[key] = metadata.count
            metadata.append((key, value))
        }
        self.metadata = metadata
        self.metadataIndex = metadataIndex

        var alignment = GGUFFile.defaultAlignment
        if let i = metadataIndex["general.alignment"] {
            guard let a = metadata[i].value.int, a > 0, a & (a - 1) == 0, a <= 1 << 20 else {
                throw FormatError.malformed(path: path, reason: "general.alignment must be a power of two")
            }
            alignment = a
        }
        self.alignment = alignment

        var raw: [(String, [Int], UInt32, UInt64)] = []
        raw.reserveCapacity(nTensors)
        for _ in 0 ..< nTensors {
            let name = try r.readString("tensor name")
            let nDims = try r.read(UInt32.self, "n_dims of \(name)")
            guard (1 ... 4).contains(nDims) else {
                throw r.fail("tensor \(name) has \(nDims) dimensions (1 to 4 allowed)")
            }
            var ne: [Int] = []
            for _ in 0 ..< nDims {
                let d = try r.read(UInt64.self, "dims of \(name)")
                guard d <= UInt64(Int32.max) else { throw r.fail("tensor \(name) has an absurd dimension \(d)") }
                ne.append(Int(d))
            }
            let type = try r.read(UInt32.self, "type of \(name)")
            let offset = try r.read(UInt64.self, "offset of \(name)")
            raw.append((name, ne, type, offset))
        }
        let dataOffset = (r.offset + alignment - 1) / alignment * alignment
        guard dataOffset <= file.count || nTensors == 0 else {
            throw FormatError.malformed(path: path, reason: "truncated before the tensor data")
        }
        self.dataOffset = dataOffset
        let dataSize = max(0, file.count - dataOffset)

        var infos: [TensorInfo] = []
        var tensorIndex: [String: Int] = [:]
        for (name, ne, typeID, offset) in raw {
            let type = TensorType(rawValue: Int(typeID))
            guard type.isKnown else {
                throw FormatError.unsupported(path: path, reason: "tensor \(name) has type \(type), which Bonsai does not support")
            }
            guard let n = checkedElementCount(ne), let size = type.byteCount(elements: n), ne[0] % type.blockSize == 0 else {
                throw FormatError.malformed(path: path, reason: "tensor \(name): shape \(ne) does not fit type \(type)")
            }
            guard offset <= UInt64(dataSize), Int(offset) <= dataSize - size else {
                throw FormatError.malformed(path: path, reason: "tensor \(name): data (\(size) bytes at offset \(offset)) runs past the end of the file")
            }
            guard Int(offset) % alignment == 0 else {
                throw FormatError.malformed(path: path, reason: "tensor \(name): offset \(offset) is not aligned to \(alignment)")
            }
            guard tensorIndex[name] == nil else {
                throw FormatError.malformed(path: path, reason: "tensor \(name) appears twice")
            }
            tensorIndex[name] = infos.count
            infos.append(TensorInfo(name: name, ne: ne, type: type, offset: Int(offset), byteCount: size))
        }
        tensorInfos = infos
        self.tensorIndex = tensorIndex
    }

    private static func readValue(_ r: inout ByteReader, type: UInt32, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try r.read(UInt8.self, key))
        case 1: return .int8(try r.read(Int8.self, key))
        case 2: return .uint16(try r.read(UInt16.self, key))
        case 3: return .int16(try r.read(Int16.self, key))
        case 4: return .uint32(try r.read(UInt32.self, key))
        case 5: return .int32(try r.read(Int32.self, key))
        case 6: return .float32(try r.readF32(key))
        case 7:
            let b = try r.read(UInt8.self, key)
            guard b <= 1 else { throw r.fail("\(key): bool value \(b)") }
            return .bool(b == 1)
        case 8: return .string(try r.readString(key))
        case 9:
            guard depth < 4 else { throw r.fail("\(key): arrays nested too deep") }
            let et = try r.read(UInt32.self, "\(key) element type")
            let minSize: Int
            switch et {
            case 0, 1, 7: minSize = 1
            case 2, 3: minSize = 2
            case 4, 5, 6: minSize = 4
            case 8, 10, 11, 12: minSize = 8
            case 9: minSize = 12
            default: throw r.fail("\(key): unknown array element type \(et)")
            }
            let n = try r.readCount("\(key) array length", minBytesEach: minSize)
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for _ in 0 ..< n { items.append(try readValue(&r, type: et, key: key, depth: depth + 1)) }
            return .array(elementType: et, items)
        case 10: return .uint64(try r.read(UInt64.self, key))
        case 11: return .int64(try r.read(Int64.self, key))
        case 12: return .float64(try r.readF64(key))
        default: throw r.fail("\(key): unknown value type \(type)")
        }
    }

    public subscript(key: String) -> GGUFValue? {
        metadataIndex[key].map { metadata[$0].value }
    }

    public var architecture: String? { self["general.architecture"]?.string }

    public func hasTensor(_ name: String) -> Bool { tensorIndex[name] != nil }

    public func tensor(_ name: String) -> TensorRef? {
        guard let i = tensorIndex[name] else { return nil }
        let info = tensorInfos[i]
        return TensorRef(name: name, type: info.type, ne: info.ne,
                         data: file.bytes.baseAddress! + dataOffset + info.offset,
                         byteCount: info.byteCount, file: file)
    }

    public var tensors: [TensorRef] { tensorInfos.compactMap { tensor($0.name) } }
}
