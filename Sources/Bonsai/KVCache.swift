#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CBonsai

/// Keys and values of every layer for positions 0 ..< nCtx, allocated once per session (calloc: memory is
/// touched only as positions fill). Keys are stored after rotary embedding. Layout per layer: head-major,
/// [heads, nCtx, head_dim], so that attention reads each head's keys and values as one stream (with
/// positions 2560 values apart, generation at 1565 cached positions ran at 4.3 tokens/s on q4_0).
///
/// The elements are f16 with the fast kernels, as in llama.cpp's default cache: every generated token reads
/// every cached key and value, and at PHI-2's 2048 positions an f32 cache is 1.3 GB a token, as much as a
/// q4_0 model's weights. They are f32 in the exact mode (`--f32-math`), which matches transformers to ~1e-5.
public final class KVCache: @unchecked Sendable {
    public enum Element: Sendable {
        case f32, f16
        var bytes: Int { self == .f32 ? 4 : 2 }
        var type: Int32 { Int32(self == .f32 ? BONSAI_TYPE_F32.rawValue : BONSAI_TYPE_F16.rawValue) }
        /// The element the current math mode calls for.
        public static var forMathMode: Element { bonsai_get_math() == BONSAI_MATH_F32 ? .f32 : .f16 }
    }

    public let nCtx: Int
    public let width: Int
    public let heads: Int
    public let headDim: Int
    public let element: Element
    let keys: [UnsafeMutableRawPointer]
    let values: [UnsafeMutableRawPointer]
    /// Number of positions filled.
    public internal(set) var length = 0

    public init(config: Phi2Config, nCtx: Int, element: Element = .forMathMode) {
        self.nCtx = nCtx
        self.element = element
        width = config.hidden_size
        heads = config.num_attention_heads
        headDim = config.head_dim
        let bytes = max(nCtx * config.hidden_size, 1) * element.bytes
        func layer() -> UnsafeMutableRawPointer {
            guard let p = calloc(bytes, 1) else { fatalError("out of memory allocating a \(bytes)-byte KV cache layer") }
            return p
        }
        keys = (0 ..< config.num_hidden_layers).map { _ in layer() }
        values = (0 ..< config.num_hidden_layers).map { _ in layer() }
    }

    deinit { (keys + values).forEach { free($0) } }

    public var byteCount: Int { 2 * keys.count * nCtx * width * element.bytes }

    /// Elements between positions, and between heads (bonsai_attention_forward_kv's layout).
    var rowStride: Int64 { Int64(headDim) }
    var headStride: Int64 { Int64(nCtx * headDim) }

    /// Writes T positions' keys and values [T, width] (f32) of `layer` at position `pos`.
    func store(layer: Int, at pos: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, count T: Int) {
        for (cache, src) in [(keys[layer], k), (values[layer], v)] {
            bonsai_kv_store(cache, element.type, rowStride, headStride, src, Int64(T), Int64(pos), Int32(heads), Int32(headDim))
        }
    }

    /// Forgets positions from `length` on (the next forward pass overwrites them).
    public func truncate(to length: Int) { self.length = min(self.length, max(0, length)) }
    public func reset() { length = 0 }
}
