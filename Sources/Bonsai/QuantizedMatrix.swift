import BonsaiFormats
import CBonsai

/// A weight matrix of any supported type: `rows` output channels × `cols` inputs, rows contiguous.
/// Its bytes live in a mapped model file (used in place) or in memory it owns (quantized at load).
public struct QuantizedMatrix: @unchecked Sendable {
    public let type: TensorType
    public let rows: Int
    public let cols: Int
    let rowStride: Int
    let data: UnsafeRawPointer
    /// Whatever keeps `data` alive: the MappedFile, or an owned buffer.
    let owner: AnyObject

    public init(tensor t: TensorRef) {
        self.init(type: t.type, rows: t.rows, cols: t.cols, data: t.data, owner: t.file)
    }

    init(type: TensorType, rows: Int, cols: Int, data: UnsafeRawPointer, owner: AnyObject) {
        self.type = type
        self.rows = rows
        self.cols = cols
        rowStride = type.byteCount(elements: cols) ?? 0
        self.data = data
        self.owner = owner
    }

    public var byteCount: Int { rows * rowStride }

    /// Rows `range` of this matrix (a view: splits a fused q/k/v weight without copying).
    public func rows(_ range: Range<Int>) -> QuantizedMatrix {
        QuantizedMatrix(type: type, rows: range.count, cols: cols, data: data + range.lowerBound * rowStride, owner: owner)
    }

    /// This matrix re-encoded as `newType` (e.g. f16 → q8_0 when loading safetensors with --quantize).
    public func converted(to newType: TensorType) -> QuantizedMatrix {
        if newType == type { return self }
        let storage = OwnedBytes(count: rows * (newType.byteCount(elements: cols) ?? 0))
        let dstStride = newType.byteCount(elements: cols)!
        let src = self
        withUnsafeTemporaryAllocation(of: Float.self, capacity: cols) { row in
            for r in 0 ..< rows {
                src.dequantizeRow(r, into: row.baseAddress!)
                _ = bonsai_quantize_row(Int32(newType.rawValue), row.baseAddress!, storage.pointer + r * dstStride, Int64(cols))
            }
        }
        return QuantizedMatrix(type: newType, rows: rows, cols: cols, data: UnsafeRawPointer(storage.pointer), owner: storage)
    }

    /// This matrix as the kernels see it (valid while `owner` lives).
    var descriptor: bonsai_matrix {
        bonsai_matrix(type: Int32(type.rawValue), rows: Int64(rows), cols: Int64(cols), row_stride: rowStride, data: data)
    }

    func withC<R>(_ body: (UnsafePointer<bonsai_matrix>) -> R) -> R {
        var m = descriptor
        return body(&m)
    }

    /// y[t][r] = W[r] · x[t] + bias[r] for t < count; x: [count, cols], y: [count, yStride].
    public func multiply(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutablePointer<Float>,
                         yStride: Int? = nil, bias: UnsafePointer<Float>? = nil) {
        withC { bonsai_matmul($0, x, Int64(count), y, Int64(yStride ?? rows), bias) }
    }

    /// One product of `multiply(_:count:)`: y = W x + bias as `multiply` computes it.
    public struct Product {
        let matrix: QuantizedMatrix
        let x: UnsafePointer<Float>
        let y: UnsafeMutablePointer<Float>
        let yStride: Int
        let bias: UnsafePointer<Float>?
        public init(_ matrix: QuantizedMatrix, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                    yStride: Int? = nil, bias: UnsafePointer<Float>?) {
            (self.matrix, self.x, self.y, self.yStride, self.bias) = (matrix, x, y, yStride ?? matrix.rows, bias)
        }
    }

    /// Several products over the same `count` tokens, each as `multiply` computes it. While generating,
    /// they share one parallel region (the threads meet once, not twice per product). No product may
    /// write where another reads. An InlineArray, so the decode loop allocates nothing for the list.
    public static func multiply<let n: Int>(_ products: InlineArray<n, Product>, count: Int) {
        withUnsafeTemporaryAllocation(of: bonsai_matrix.self, capacity: n) { mats in
            withUnsafeTemporaryAllocation(of: bonsai_matmul_job.self, capacity: n) { jobs in
                for i in 0 ..< n {
                    let p = products[i]
                    mats[i] = p.matrix.descriptor
                    jobs[i] = bonsai_matmul_job(W: mats.baseAddress! + i, X: p.x, Y: p.y, y_stride: Int64(p.yStride), bias: p.bias)
                }
                withExtendedLifetime(products) {
                    bonsai_matmul_batch(jobs.baseAddress!, Int32(n), Int64(count))
                }
            }
        }
    }

    /// The input gradient of `multiply`: dx[t] (+)= Σ_r dy[t][r] W[r] for t < count; dy: [count, dyStride],
    /// dx: [count, cols]. The weight is dequantized exactly and the products accumulate in f32.
    public func multiplyBackward(_ dy: UnsafePointer<Float>, dyStride: Int? = nil, count: Int,
                                 into dx: UnsafeMutablePointer<Float>, accumulate: Bool) {
        withC { bonsai_matmul_backward($0, dy, Int64(dyStride ?? rows), Int64(count), dx, accumulate) }
    }

    public func dequantizeRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        withC { bonsai_matrix_row($0, Int64(r), dst) }
    }
}

/// Heap bytes owned by a matrix made at load time.
final class OwnedBytes: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(count: Int) { pointer = .allocate(byteCount: max(count, 1), alignment: 64) }
    deinit { pointer.deallocate() }
}
