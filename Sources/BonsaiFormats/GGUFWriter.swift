/// Writes GGUF v3 files that llama.cpp accepts: tensor data dense, in tensor-info order, each tensor
/// padded to the alignment (`general.alignment` if present, else 32). Written atomically.
public struct GGUFWriter {
    public struct Tensor {
        public let name: String
        public let type: TensorType
        public let ne: [Int]
        /// Writes exactly the tensor's bytes (type.byteCount(elements:)) to the sink.
        public let write: (AtomicFileWriter) throws -> Void

        public init(name: String, type: TensorType, ne: [Int], write: @escaping (AtomicFileWriter) throws -> Void) {
            self.name = name
            self.type = type
            self.ne = ne
            self.write = write
        }

        /// A tensor whose bytes already sit in memory (a mapped file, an array...).
        public init(name: String, type: TensorType, ne: [Int], bytes: UnsafeRawBufferPointer) {
            self.init(name: name, type: type, ne: ne) { try $0.write(bytes) }
        }

        public var byteCount: Int { type.byteCount(elements: ne.reduce(1, *)) ?? 0 }
    }

    public var metadata: [(key: String, value: GGUFValue)] = []
    public var tensors: [Tensor] = []

    public init() {}

    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.key == key }) {
            metadata[i].value = value
        } else {
            metadata.append((key, value))
        }
    }

    public var alignment: Int {
        metadata.first { $0.key == "general.alignment" }?.value.int ?? GGUFFile.defaultAlignment
    }

    /// Writes the file; `progress(done, total)` is called after each tensor.
    public func write(to path: String, progress: ((Int, Int) -> Void)? = nil) throws {
        let align = alignment
        let out = try AtomicFileWriter(path: path)
        try out.write([0x47, 0x47, 0x55, 0x46] as [UInt8])   // "GGUF"
        try out.write(UInt32(3))
        try out.write(UInt64(tensors.count))
        try out.write(UInt64(metadata.count))
        for (key, value) in metadata {
            try writeString(key, out)
            try out.write(value.typeID)
            try writeValue(value, out)
        }
        var offset = 0
        for t in tensors {
            try writeString(t.name, out)
            try out.write(UInt32(t.ne.count))
            for d in t.ne { try out.write(UInt64(d)) }
            try out.write(UInt32(t.type.rawValue))
            try out.write(UInt64(offset))
            offset += (t.byteCount + align - 1) / align * align
        }
        try out.writeZeros((align - out.bytesWritten % align) % align)
        for (i, t) in tensors.enumerated() {
            let start = out.bytesWritten
            try t.write(out)
            guard out.bytesWritten - start == t.byteCount else {
                throw FormatError.io(path: path, reason: "tensor \(t.name): wrote \(out.bytesWritten - start) bytes, expected \(t.byteCount)")
            }
            try out.writeZeros((align - t.byteCount % align) % align)
            progress?(i + 1, tensors.count)
        }
        try out.commit()
    }

    private func writeString(_ s: String, _ out: AtomicFileWriter) throws {
        let u = Array(s.utf8)
        try out.write(UInt64(u.count))
        try out.write(u)
    }

    private func writeValue(_ v: GGUFValue, _ out: AtomicFileWriter) throws {
        switch v {
        case let .uint8(x): try out.write(x)
        case let .int8(x): try out.write(x)
        case let .uint16(x): try out.write(x)
        case let .int16(x): try out.write(x)
        case let .uint32(x): try out.write(x)
        case let .int32(x): try out.write(x)
        case let .float32(x): try out.write(x.bitPattern)
        case let .bool(x): try out.write(UInt8(x ? 1 : 0))
        case let .string(s): try writeString(s, out)
        case let .array(et, items):
            try out.write(et)
            try out.write(UInt64(items.count))
            for item in items { try writeValue(item, out) }
        case let .uint64(x): try out.write(x)
        case let .int64(x): try out.write(x)
        case let .float64(x): try out.write(x.bitPattern)
        }
    }
}
