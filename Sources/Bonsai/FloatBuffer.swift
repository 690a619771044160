#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed-size f32 buffer, allocated once and reused (activations, KV cache, logits).
/// calloc gives large buffers as untouched zero pages: a 2048-position KV cache costs memory only as
/// positions are filled, and nothing at start-up.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        guard let p = calloc(max(count, 1), MemoryLayout<Float>.size) else {
            fatalError("out of memory allocating \(count) floats")
        }
        pointer = p.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    deinit { free(pointer) }
}
