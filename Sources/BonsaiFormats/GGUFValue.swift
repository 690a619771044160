/// A GGUF metadata value (all thirteen value types of GGUF v2/v3).
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// Elements all of `elementType` (a GGUFValue type id).
    case array(elementType: UInt32, [GGUFValue])

    /// GGUF's type id of this value.
    public var typeID: UInt32 {
        switch self {
        case .uint8: 0
        case .int8: 1
        case .uint16: 2
        case .int16: 3
        case .uint32: 4
        case .int32: 5
        case .float32: 6
        case .bool: 7
        case .string: 8
        case .array: 9
        case .uint64: 10
        case .int64: 11
        case .float64: 12
        }
    }

    public var int: Int? {
        switch self {
        case let .uint8(v): Int(v)
        case let .int8(v): Int(v)
        case let .uint16(v): Int(v)
        case let .int16(v): Int(v)
        case let .uint32(v): Int(v)
        case let .int32(v): Int(v)
        case let .uint64(v): v <= UInt64(Int.max) ? Int(v) : nil
        case let .int64(v): Int(v)
        case let .bool(v): v ? 1 : 0
        default: nil
        }
    }

    public var double: Double? {
        switch self {
        case let .float32(v): Double(v)
        case let .float64(v): v
        default: int.map(Double.init)
        }
    }

    public var string: String? { if case let .string(s) = self { s } else { nil } }
    public var bool: Bool? { if case let .bool(b) = self { b } else { int.map { $0 != 0 } } }
    public var array: [GGUFValue]? { if case let .array(_, a) = self { a } else { nil } }
    public var strings: [String]? { array?.compactMap(\.string) }
    public var ints: [Int]? { array?.compactMap(\.int) }

    /// Short rendering for `bonsai info`: arrays show their length and first items.
    public var summary: String {
        switch self {
        case let .string(s): return s.count > 80 ? "\"\(s.prefix(77))...\"" : "\"\(s)\""
        case let .array(_, a):
            let head = a.prefix(4).map(\.summary).joined(separator: ", ")
            return "[\(a.count) items: \(head)\(a.count > 4 ? ", ..." : "")]"
        case let .float32(v): return "\(v)"
        case let .float64(v): return "\(v)"
        case let .bool(v): return "\(v)"
        default: return int.map(String.init) ?? "?"
        }
    }
}
