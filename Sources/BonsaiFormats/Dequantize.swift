import CBonsai

/// Dequantizes `count` elements of `type` to f32 (false for a type that cannot be dequantized).
@discardableResult
public func bonsaiDequantize(_ type: TensorType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) -> Bool {
    bonsai_dequantize_row(Int32(type.rawValue), src, dst, Int64(count))
}
