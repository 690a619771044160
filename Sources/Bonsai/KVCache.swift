/// Keys and values of every layer for positions 0 ..< nCtx, f32, allocated once per session.
/// Keys are stored after rotary embedding. Layout per layer: [nCtx, hidden_size].
public final class KVCache: @unchecked Sendable {
    public let nCtx: Int
    public let width: Int
    let keys: [FloatBuffer]
    let values: [FloatBuffer]
    /// Number of positions filled.
    public internal(set) var length = 0

    public init(config: Phi2Config, nCtx: Int) {
        self.nCtx = nCtx
        width = config.hidden_size
        keys = (0 ..< config.num_hidden_layers).map { _ in FloatBuffer(count: nCtx * config.hidden_size) }
        values = (0 ..< config.num_hidden_layers).map { _ in FloatBuffer(count: nCtx * config.hidden_size) }
    }

    public var byteCount: Int { 2 * keys.count * nCtx * width * 4 }

    /// Forgets positions from `length` on (the next forward pass overwrites them).
    public func truncate(to length: Int) { self.length = min(self.length, max(0, length)) }
    public func reset() { length = 0 }
}
