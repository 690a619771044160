/// A tensor inside a mapped file: typed bytes used in place.
///
/// `ne` is in ggml order, innermost dimension first: a weight matrix with `rows` output channels of
/// `cols` inputs has ne = [cols, rows] (torch shape [rows, cols], the same memory layout).
public struct TensorRef: @unchecked Sendable {
    public let name: String
    public let type: TensorType
    public let ne: [Int]
    public let data: UnsafeRawPointer
    public let byteCount: Int
    /// Keeps the mapping alive while the tensor is in use.
    public let file: MappedFile

    public var elementCount: Int { ne.reduce(1, *) }
    /// torch order: outermost first.
    public var shape: [Int] { ne.reversed() }
    public var cols: Int { ne.first ?? 1 }
    public var rows: Int { ne.count > 1 ? ne.dropFirst().reduce(1, *) : 1 }
}

/// Multiplies dimensions, refusing overflow and non-positive sizes.
func checkedElementCount(_ dims: [Int]) -> Int? {
    var n = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (m, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = m
    }
    return n
}
