import BonsaiFormats
import CBonsai
import XCTest

/// Fast int8 kernels against the reference dot product (both rows dequantized, summed in double).
final class KernelTests: XCTestCase {
    /// Weight rows: real quantizations of random data where we have a quantizer, else random blocks
    /// with sane scales. Activations: random data quantized to the type's vec_dot_type.
    /// Tolerance: the kernels sum exact integer products per block and round once per block scale
    /// product, so they agree with the double-precision reference to ~1e-6 of Σ|w·a|; the float rows'
    /// dots (f16, bf16 against f32) round each product and sum, in sums of at most n/16 terms per lane.
    func testFastDotsMatchReference() {
        var rng = SplitMix(seed: 11)
        for type in [TensorType.q4_0, .q8_0, .q4_K, .q6_K, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q5_K, .iq4_nl, .iq4_xs, .f16, .bf16] {
            let info = bonsai_type_info(Int32(type.rawValue))!.pointee
            let at = Int(info.vec_dot_type)
            // float rows: whole cache lines, 8-element steps and single elements at the end
            let odd = type.blockSize == 32 ? [32, 96, 2592] : type.blockSize == 1 ? [1, 7, 80, 2599] : []
            for n in [256, 2560, 10240] + odd {
                let w = randomRow(type, n, &rng)
                var x = [Float](repeating: 0, count: n)
                for i in x.indices { x[i] = Float.random(in: -3 ... 3, using: &rng) }
                var a = [UInt8](repeating: 0, count: bonsai_row_size(Int32(at), Int64(n)))
                XCTAssertTrue(bonsai_quantize_row(Int32(at), x, &a, Int64(n)))
                let ref = bonsai_vec_dot_ref(Int32(type.rawValue), Int64(n), w, a)
                let fast = bonsai_vec_dot(Int32(type.rawValue), Int64(n), w, a)
                var wf = [Float](repeating: 0, count: n), af = [Float](repeating: 0, count: n)
                bonsai_dequantize_row(Int32(type.rawValue), w, &wf, Int64(n))
                bonsai_dequantize_row(Int32(at), a, &af, Int64(n))
                let mag = zip(wf, af).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                XCTAssertEqual(Double(fast), Double(ref), accuracy: 2e-6 * mag + 1e-6, "\(type) n=\(n)")
            }
        }
    }

    /// Activation quantizers: q8_1 keeps s = d·Σq, q8_K keeps per-16 sums; both within half a step.
    func testActivationQuantizers() {
        var rng = SplitMix(seed: 5)
        let n = 512
        let x = (0 ..< n).map { _ in Float.random(in: -2 ... 2, using: &rng) }
        for at in [BONSAI_TYPE_Q8_0, BONSAI_TYPE_Q8_1, BONSAI_TYPE_Q8_K] {
            var q = [UInt8](repeating: 0, count: bonsai_row_size(Int32(at.rawValue), Int64(n)))
            XCTAssertTrue(bonsai_quantize_row(Int32(at.rawValue), x, &q, Int64(n)))
            var back = [Float](repeating: 0, count: n)
            bonsai_dequantize_row(Int32(at.rawValue), q, &back, Int64(n))
            let amax = x.map(abs).max()!
            XCTAssertLessThanOrEqual(maxAbs(back, x), amax / 127 * 0.5 + 1e-3, "\(at)")
            if at == BONSAI_TYPE_Q8_K {
                q.withUnsafeBytes { p in
                    let b = p.load(as: block_q8_K.self)
                    var sums = b.bsums
                    let qs = withUnsafeBytes(of: b.qs) { Array($0.bindMemory(to: Int8.self)) }
                    withUnsafeBytes(of: &sums) { s in
                        for j in 0 ..< 16 { XCTAssertEqual(Int(s.load(fromByteOffset: 2 * j, as: Int16.self)), qs[16 * j ..< 16 * j + 16].reduce(0) { $0 + Int($1) }) }
                    }
                }
            }
        }
    }

    private func maxAbs(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) } }

}

/// A weight row: a real quantization of random data (every type has a quantizer).
private func randomRow(_ type: TensorType, _ n: Int, _ rng: inout SplitMix) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: type.byteCount(elements: n)!)
    let dense = (0 ..< n).map { _ in Float.random(in: -1 ... 1, using: &rng) }
    precondition(bonsai_quantize_row(Int32(type.rawValue), dense, &bytes, Int64(n)), "no quantizer for \(type)")
    return bytes
}

/// q8_0's short prompts (4 to 7 tokens) inside bonsai_matmul go through the blocked 4 × 4 int8 kernel:
/// against one reference dot per (row, token) on the same quantized activations (1e-3: f32 sums of 512
/// products of magnitude ≤ 2). Shapes leave remainders on both axes. (Longer prompts: UnpackedMatmulTests.)
final class BlockedMatmulTests: XCTestCase {
    func testBlockedKernelsEqualPerPairDots() {
        var rng = SplitMix(seed: 3)
        bonsai_set_math(BONSAI_MATH_FAST)
        defer { bonsai_set_math(BONSAI_MATH_F32) }
        for type in [TensorType.q8_0] {
            for (rows, T) in [(37, 7), (64, 4), (6, 5)] {
                let cols = 512
                let rowBytes = type.byteCount(elements: cols)!
                var w = [UInt8](repeating: 0, count: rows * rowBytes)
                for r in 0 ..< rows {
                    let dense = (0 ..< cols).map { _ in Float.random(in: -1 ... 1, using: &rng) }
                    w.withUnsafeMutableBytes { _ = bonsai_quantize_row(Int32(type.rawValue), dense, $0.baseAddress! + r * rowBytes, Int64(cols)) }
                }
                let x = (0 ..< T * cols).map { _ in Float.random(in: -2 ... 2, using: &rng) }
                let bias = (0 ..< rows).map { _ in Float.random(in: -1 ... 1, using: &rng) }
                var y = [Float](repeating: .nan, count: T * rows)
                let at = Int32(bonsai_type_info(Int32(type.rawValue))!.pointee.vec_dot_type)
                let arow = bonsai_row_size(at, Int64(cols))
                var aq = [UInt8](repeating: 0, count: arow)
                w.withUnsafeBytes { wp in
                    var m = bonsai_matrix(type: Int32(type.rawValue), rows: Int64(rows), cols: Int64(cols), row_stride: rowBytes, data: wp.baseAddress!)
                    bonsai_matmul(&m, x, Int64(T), &y, Int64(rows), bias)
                    for t in 0 ..< T {
                        let xt = Array(x[t * cols ..< (t + 1) * cols])
                        _ = bonsai_quantize_row(at, xt, &aq, Int64(cols))
                        for r in 0 ..< rows {
                            let ref = bonsai_vec_dot_ref(Int32(type.rawValue), Int64(cols), wp.baseAddress! + r * rowBytes, aq) + bias[r]
                            XCTAssertEqual(y[t * rows + r], ref, accuracy: 1e-3, "\(type) \(rows)×\(T): r\(r) t\(t)")
                        }
                    }
                }
            }
        }
    }
}

/// bonsai_matmul_batch: generation's products in one parallel region, rows split by bytes across the
/// jobs, four rows at a time where the type has a 4-row dot. Each output must be bit-identical to the
/// same int8 dot computed alone (bonsai_vec_dot on the
/// activation quantized to the type's vec_dot_type) plus the bias: the partition may neither skip nor
/// repeat a row (outputs start as NaN), and each job must see its own input, type and y_stride. Jobs
/// of different types share an input (a thread re-quantizes when the type changes), and an f32 job,
/// which has no int8 dot, runs on its own through bonsai_matmul. 1, 2, 3 and 7 threads (more than the
/// cores, so threads finish at different times and take each other's rows); 1 to 3 tokens.
final class MatmulBatchTests: XCTestCase {
    func testBatchEqualsEachProductAlone() {
        var rng = SplitMix(seed: 17)
        bonsai_set_math(BONSAI_MATH_FAST)
        let threads = bonsai_max_threads()
        defer { bonsai_set_math(BONSAI_MATH_F32); bonsai_set_threads(threads) }
        // (type, rows, cols, input): inputs 0 and 1 have 2560 columns, input 2 has 768, input 3 2592 (81
        // blocks: the last group of 8 of q4_0, q5_0, q4_1 is partial). Types with a 4-row dot read four rows a quarter of the
        // matrix apart: 64·k rows make only whole quarters; 300, 200, 132, 130 and 68 leave rows that go one at a time.
        // f16 and bf16 have 4-row dots in f32 (float_dots.c).
        let shapes: [(TensorType, Int, Int, Int)] = [(.q4_0, 300, 2560, 0), (.q8_0, 130, 2560, 0), (.q4_K, 200, 768, 2),
                                                      (.q4_0, 23, 2560, 1), (.f32, 5, 2560, 1), (.q6_K, 1, 2560, 0),
                                                      (.q8_0, 0, 2560, 1),   // a job with no rows
                                                      (.q6_K, 64, 768, 2), (.q5_K, 128, 768, 2), (.q4_0, 128, 2592, 3),
                                                      (.q8_0, 192, 2560, 1), (.q3_K, 68, 768, 2), (.q2_K, 6, 2560, 0), (.q2_K, 200, 768, 2),
                                                      (.f16, 64, 2592, 3), (.bf16, 132, 768, 2),
                                                      (.q5_0, 64, 2592, 3), (.q4_1, 128, 2592, 3), (.q5_1, 68, 2560, 1),
                                                      (.iq4_nl, 132, 2592, 3), (.iq4_xs, 68, 768, 2)]
        let inputCols = [2560, 2560, 768, 2592]
        for nThreads in [1, 2, 3, 7] {
            bonsai_set_threads(Int32(nThreads))
            for T in 1 ... 3 {
                let inputs = inputCols.map { n in (0 ..< T * n).map { _ in Float.random(in: -2 ... 2, using: &rng) } }
                let weights = shapes.map { (type, rows, cols, _) in (0 ..< rows).flatMap { _ in randomRow(type, cols, &rng) } }
                let biases = shapes.map { s in (0 ..< s.1).map { _ in Float.random(in: -1 ... 1, using: &rng) } }
                let strides = shapes.map { $0.1 + 3 }   // y_stride > rows: the gaps must stay untouched
                var outputs = strides.map { [Float](repeating: .nan, count: T * $0) }
                let wp = weights.map { w in UnsafeMutableRawPointer.allocate(byteCount: w.count, alignment: 64) }
                let yp = outputs.map { o in UnsafeMutablePointer<Float>.allocate(capacity: o.count) }
                defer { wp.forEach { $0.deallocate() }; yp.forEach { $0.deallocate() } }
                for i in shapes.indices {
                    weights[i].withUnsafeBytes { wp[i].copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                    yp[i].initialize(repeating: .nan, count: outputs[i].count)
                }
                var mats = shapes.indices.map { i in
                    bonsai_matrix(type: Int32(shapes[i].0.rawValue), rows: Int64(shapes[i].1), cols: Int64(shapes[i].2),
                                  row_stride: shapes[i].0.byteCount(elements: shapes[i].2)!, data: wp[i])
                }
                let xp = inputs.map(pinned), bp = biases.map(pinned)
                defer { (xp + bp).forEach { $0.deallocate() } }
                mats.withUnsafeMutableBufferPointer { m in
                    let jobs = shapes.indices.map { i in
                        bonsai_matmul_job(W: m.baseAddress! + i, X: xp[shapes[i].3], Y: yp[i], y_stride: Int64(strides[i]), bias: bp[i])
                    }
                    bonsai_matmul_batch(jobs, Int32(jobs.count), Int64(T))
                }
                for i in shapes.indices { outputs[i] = Array(UnsafeBufferPointer(start: yp[i], count: outputs[i].count)) }
                for (i, (type, rows, cols, input)) in shapes.enumerated() {
                    let rowBytes = type.byteCount(elements: cols)!
                    for t in 0 ..< T {
                        let x = Array(inputs[input][t * cols ..< (t + 1) * cols])
                        for r in 0 ..< rows {
                            let w = Array(weights[i][r * rowBytes ..< (r + 1) * rowBytes])
                            let expected: Float
                            if type == .f32 {   // no int8 dot: bonsai_matmul's exact path
                                var y: Float = 0
                                w.withUnsafeBytes { wb in
                                    var m = bonsai_matrix(type: Int32(type.rawValue), rows: 1, cols: Int64(cols), row_stride: rowBytes, data: wb.baseAddress!)
                                    bonsai_matmul(&m, x, 1, &y, 1, [biases[i][r]])
                                }
                                expected = y
                            } else {
                                let at = Int32(bonsai_type_info(Int32(type.rawValue))!.pointee.vec_dot_type)
                                var a = [UInt8](repeating: 0, count: bonsai_row_size(at, Int64(cols)))
                                _ = bonsai_quantize_row(at, x, &a, Int64(cols))
                                expected = bonsai_vec_dot(Int32(type.rawValue), Int64(cols), w, a) + biases[i][r]
                            }
                            XCTAssertEqual(outputs[i][t * strides[i] + r], expected, "\(type) job \(i) r\(r) t\(t), \(nThreads) threads")
                        }
                        for r in rows ..< strides[i] { XCTAssertTrue(outputs[i][t * strides[i] + r].isNaN, "job \(i) wrote past its rows") }
                    }
                }
            }
        }
    }

    private func pinned(_ a: [Float]) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: a.count)
        p.initialize(from: a, count: a.count)
        return p
    }
}

/// The prompt path of the types that unpack (unpacked.c): weights unpacked to bytes + (scale, offset) per
/// 32 or 16 elements (q8_0: its signed bytes; random bytes reach -128, the bound of its kernel's i16
/// pair sums), activations rounded per token and 32 elements (d = amax/127 in f32, ties to even). Against that
/// computation in double from the exactly dequantized weights, so unpacking (nibbles, high bits, K
/// scales and mins, q3_K's packed 6-bit scales), activation rounding, the kernel, the zero-padded last set
/// of tokens (T % 8), and the rows past the last group of 4 (per-pair kernels with q8_0/q8_K rounding,
/// checked against bonsai_vec_dot_ref, as are all rows when the prompt is too short to unpack) are all covered. Tolerance: 2e-5 of Σ|w·x| (f32 accumulation over 512 products).
final class UnpackedMatmulTests: XCTestCase {
    func testUnpackedPathEqualsItsRounding() throws {
        try XCTSkipUnless(String(cString: bonsai_cpu_features()).contains("AVX2"), "the int8 paths need AVX2")
        var rng = SplitMix(seed: 11)
        bonsai_set_math(BONSAI_MATH_FAST)
        defer { bonsai_set_math(BONSAI_MATH_F32) }
        for type in [TensorType.q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q2_K, .q3_K, .q6_K, .q8_0, .iq4_nl, .iq4_xs] {
            for (rows, T) in [(37, 21), (64, 8), (6, 131), (12, 5), (9, 263)] {   // 263: two chunks of unpacking (matmul.c's UNPACKED_CHUNK)
                let cols = 512
                let rowBytes = type.byteCount(elements: cols)!
                var w = [UInt8](repeating: 0, count: rows * rowBytes)
                for i in w.indices { w[i] = UInt8.random(in: 0 ... 255, using: &rng) }   // every bit pattern
                type.setBlockScales(&w, to: 0.02)
                let x = (0 ..< T * cols).map { _ in Float.random(in: -2 ... 2, using: &rng) }
                let bias = (0 ..< rows).map { _ in Float.random(in: -1 ... 1, using: &rng) }
                var y = [Float](repeating: .nan, count: T * rows)
                let at = Int32(bonsai_type_info(Int32(type.rawValue))!.pointee.vec_dot_type)
                var aq = [UInt8](repeating: 0, count: bonsai_row_size(at, Int64(cols)))
                let unpacks = T >= (type == .q8_0 || type == .iq4_nl || type == .iq4_xs ? 8 : 4)   // signed kinds (S8) from 8 tokens
                let kernelRows = unpacks ? rows / 4 * 4 : 0
                w.withUnsafeBytes { wp in
                    var m = bonsai_matrix(type: Int32(type.rawValue), rows: Int64(rows), cols: Int64(cols), row_stride: rowBytes, data: wp.baseAddress!)
                    bonsai_matmul(&m, x, Int64(T), &y, Int64(rows), bias)
                    var row = [Float](repeating: 0, count: cols)
                    for r in 0 ..< rows {
                        bonsai_matrix_row(&m, Int64(r), &row)
                        for t in 0 ..< T {
                            let xt = Array(x[t * cols ..< (t + 1) * cols])
                            let ref: Double
                            if r < kernelRows {
                                ref = Self.roundedDot(row, xt)
                            } else {
                                _ = bonsai_quantize_row(at, xt, &aq, Int64(cols))
                                ref = Double(bonsai_vec_dot_ref(Int32(type.rawValue), Int64(cols), wp.baseAddress! + r * rowBytes, aq))
                            }
                            let mag = zip(row, xt).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                            XCTAssertEqual(Double(y[t * rows + r]), ref + Double(bias[r]), accuracy: 2e-5 * mag, "\(type) \(rows)×\(T): r\(r) t\(t)")
                        }
                    }
                }
            }
        }
    }

    /// q8_0's prompt kernel at the edge of its i16 pair sums: every weight −128 (or +127, or alternating)
    /// against activations that round to ∓127, so each maddubs lane holds 2·128·127 = 32512, just under
    /// 2^15. A kernel that added two such lanes before widening (or saturated) would be off by far more
    /// than the 2e-5 relative tolerance (f32 sums of 512 equal products).
    func testSignedKernelAtItsBounds() throws {
        try XCTSkipUnless(String(cString: bonsai_cpu_features()).contains("AVX2"), "the int8 paths need AVX2")
        bonsai_set_math(BONSAI_MATH_FAST)
        defer { bonsai_set_math(BONSAI_MATH_F32) }
        let rows = 8, cols = 512, T = 8, rowBytes = TensorType.q8_0.byteCount(elements: cols)!
        for (byte, xv): (UInt8, Float) in [(0x80, -2), (0x7f, 2), (0x80, 2)] {
            for alternate in [false, true] {
                var w = [UInt8](repeating: byte, count: rows * rowBytes)
                if alternate { for i in w.indices where i % 2 == 0 { w[i] = 0x7f } }
                TensorType.q8_0.setBlockScales(&w, to: 0.02)
                let x = [Float](repeating: xv, count: T * cols)
                var y = [Float](repeating: .nan, count: T * rows)
                w.withUnsafeBytes { wp in
                    var m = bonsai_matrix(type: Int32(TensorType.q8_0.rawValue), rows: Int64(rows), cols: Int64(cols),
                                          row_stride: rowBytes, data: wp.baseAddress!)
                    bonsai_matmul(&m, x, Int64(T), &y, Int64(rows), nil)
                    var row = [Float](repeating: 0, count: cols)
                    for r in 0 ..< rows {
                        bonsai_matrix_row(&m, Int64(r), &row)
                        let ref = Self.roundedDot(row, Array(x[0 ..< cols]))
                        let mag = row.reduce(0.0) { $0 + abs(Double($1) * Double(xv)) }
                        for t in 0 ..< T {
                            XCTAssertEqual(Double(y[t * rows + r]), ref, accuracy: 2e-5 * mag, "byte \(byte) x \(xv) alternate \(alternate): r\(r) t\(t)")
                        }
                    }
                }
            }
        }
    }

    /// Σ w·(d·q) in double, q the activation rounded per 32 elements as bonsai_pack_act8x32 does.
    static func roundedDot(_ w: [Float], _ x: [Float]) -> Double {
        var sum = 0.0
        for b in stride(from: 0, to: x.count, by: 32) {
            let amax = x[b ..< b + 32].map(abs).max()!
            let d = amax / 127, id: Float = d != 0 ? 1 / d : 0
            for k in b ..< b + 32 { sum += Double(w[k]) * Double(d) * Double((x[k] * id).rounded(.toNearestOrEven)) }
        }
        return sum
    }
}

/// The vectorized ops against double: gelu_new (x / (1 + e^(-2u)) with a polynomial exp) against the tanh
/// formula, relative error ≤ 1e-6 (the fp32 rounding of the formula itself is ~1e-7); LayerNorm.
final class OpsTests: XCTestCase {
    func testGeluMatchesTanhFormula() {
        var x = (0 ..< 20001).map { Float($0 - 10000) / 1000 }   // -10 ... 10
        x += [-30, -88, 30, 88, 0, 1e-6, -1e-6]
        let ref = x.map { v -> Double in
            let d = Double(v)
            return 0.5 * d * (1 + tanh(0.7978845608028654 * (d + 0.044715 * d * d * d)))
        }
        var y = x
        bonsai_gelu_forward(&y, Int64(y.count))
        for i in x.indices {
            XCTAssertEqual(Double(y[i]), ref[i], accuracy: 1e-6 * max(1, abs(ref[i])), "gelu(\(x[i]))")
        }
    }

    /// LayerNorm (8-lane partial sums, two passes) against double, for PHI-2's 2560 and 37 (a tail of 5
    /// after the lanes), rows centred at 3 so a one-pass variance would lose digits, and 6 rows (> 4: the
    /// threaded path). Tolerance 1e-5 of |w·x̂| + |b| + 1e-6: f32 sums of 2560 terms near 3 carry ~1e-6
    /// relative error into the mean; the mean, rstd outputs to 1e-5 relative.
    func testLayerNormMatchesDouble() {
        var rng = SplitMix(seed: 11)
        for C in [2560, 37] {
            let T = 6
            let x = (0 ..< T * C).map { _ in 3 + Float.random(in: -1 ... 1, using: &rng) }
            let w = (0 ..< C).map { _ in Float.random(in: 0.5 ... 1.5, using: &rng) }
            let b = (0 ..< C).map { _ in Float.random(in: -0.5 ... 0.5, using: &rng) }
            var out = [Float](repeating: 0, count: T * C), mean = [Float](repeating: 0, count: T)
            var rstd = [Float](repeating: 0, count: T)
            bonsai_layernorm_forward(&out, &mean, &rstd, x, w, b, Int64(T), Int64(C), 1e-5)
            for t in 0 ..< T {
                let row = x[t * C ..< (t + 1) * C].map(Double.init)
                let m = row.reduce(0, +) / Double(C)
                let rs = 1 / (row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(C) + 1e-5).squareRoot()
                XCTAssertEqual(Double(mean[t]), m, accuracy: 1e-5 * abs(m), "mean, C = \(C)")
                XCTAssertEqual(Double(rstd[t]), rs, accuracy: 1e-5 * rs, "rstd, C = \(C)")
                for i in 0 ..< C {
                    let xhat = (row[i] - m) * rs, ref = xhat * Double(w[i]) + Double(b[i])
                    XCTAssertEqual(Double(out[t * C + i]), ref, accuracy: 1e-5 * (abs(xhat * Double(w[i])) + abs(Double(b[i]))) + 1e-6,
                                   "layernorm, C = \(C), row \(t), \(i)")
                }
            }
        }
    }
}

/// Causal attention against a double-precision reference, for PHI-2's head_dim 80, the fixture's 64, and
/// 20 (not a multiple of 8: the portable loop). 13 queries take the per-query path; 70 the blocked gemm
/// path (blocks of 64 queries: one full, one partial) behind 27 cached keys. Tolerance 1e-5 (f32 sums over
/// ≤ 97 keys of values in [-1, 1]). The same against an f16 cache (the fast mode's) laid out head-major (as
/// KVCache), whose reference uses the keys and values as f16 holds them: the sums stay f32.
final class AttentionTests: XCTestCase {
    func testAttentionMatchesReference() { check(f16Cache: false) }
    func testAttentionWithF16CacheMatchesReference() { check(f16Cache: true) }

    private func check(f16Cache: Bool) {
        var rng = SplitMix(seed: 9)
        for hd in [80, 64, 20] {
            for T in [13, 70] {
                let heads = 3, pos0 = 27, dm = heads * hd, nKeys = pos0 + T
                let q = (0 ..< T * dm).map { _ in Float.random(in: -1 ... 1, using: &rng) }
                var k = (0 ..< nKeys * dm).map { _ in Float.random(in: -1 ... 1, using: &rng) }
                var v = (0 ..< nKeys * dm).map { _ in Float.random(in: -1 ... 1, using: &rng) }
                var out = [Float](repeating: .nan, count: T * dm)
                var scratch = [Float](repeating: 0, count: Int(bonsai_max_threads()) * nKeys)
                let scale = 1 / Float(hd).squareRoot()
                if f16Cache {
                    let f16 = Int32(BONSAI_TYPE_F16.rawValue)
                    let kf = k, vf = v
                    var kh = [UInt16](repeating: 0, count: k.count), vh = kh
                    XCTAssertTrue(bonsai_quantize_row(f16, k, &kh, Int64(k.count)) && bonsai_quantize_row(f16, v, &vh, Int64(v.count)))
                    bonsai_dequantize_row(f16, kh, &k, Int64(k.count))   // the reference sees what the cache holds
                    bonsai_dequantize_row(f16, vh, &v, Int64(v.count))
                    // bonsai_kv_store into the head-major layout the model's cache uses (positions hd apart, heads
                    // nKeys·hd apart), in two calls as a prompt and then more tokens would; it must hold exactly
                    // the portable conversion's values, moved there
                    var kc = [UInt16](repeating: 0, count: k.count), vc = kc
                    for (dst, src) in [(0, kf), (1, vf)] {
                        for (p0, n) in [(0, pos0), (pos0, T)] {
                            src.withUnsafeBufferPointer { s in
                                let rows = s.baseAddress! + p0 * dm
                                if dst == 0 { bonsai_kv_store(&kc, f16, Int64(hd), Int64(nKeys * hd), rows, Int64(n), Int64(p0), Int32(heads), Int32(hd)) }
                                else { bonsai_kv_store(&vc, f16, Int64(hd), Int64(nKeys * hd), rows, Int64(n), Int64(p0), Int32(heads), Int32(hd)) }
                            }
                        }
                    }
                    var moved = 0
                    for j in 0 ..< nKeys {
                        for h in 0 ..< heads {
                            for i in 0 ..< hd where kc[(h * nKeys + j) * hd + i] == kh[j * dm + h * hd + i]
                                && vc[(h * nKeys + j) * hd + i] == vh[j * dm + h * hd + i] { moved += 1 }
                        }
                    }
                    XCTAssertEqual(moved, nKeys * dm, "kv_store: hd \(hd) T \(T)")
                    bonsai_attention_forward_kv(&out, q, Int64(dm), kc, vc, f16, Int64(hd), Int64(nKeys * hd), Int64(T), Int64(pos0),
                                                Int32(heads), Int32(hd), scale, &scratch)
                } else {
                    bonsai_attention_forward(&out, q, Int64(dm), k, v, Int64(T), Int64(pos0), Int32(heads), Int32(hd), scale, &scratch)
                }
                for t in 0 ..< T {
                    for h in 0 ..< heads {
                        let n = pos0 + t + 1
                        var s = [Double](repeating: 0, count: n)
                        for j in 0 ..< n {
                            for d in 0 ..< hd { s[j] += Double(q[t * dm + h * hd + d]) * Double(k[j * dm + h * hd + d]) }
                            s[j] *= Double(scale)
                        }
                        let m = s.max()!
                        let e = s.map { exp($0 - m) }, z = e.reduce(0, +)
                        for d in 0 ..< hd {
                            var ref = 0.0
                            for j in 0 ..< n { ref += e[j] / z * Double(v[j * dm + h * hd + d]) }
                            XCTAssertEqual(Double(out[t * dm + h * hd + d]), ref, accuracy: 1e-5, "f16 \(f16Cache) hd \(hd) T \(T) t \(t) h \(h) d \(d)")
                        }
                    }
                }
            }
        }
    }
}

/// NeoX rotary on the first 32 of 80 dims (PHI-2's shape) against the formula in double; dims 32..79 untouched.
final class RotaryTests: XCTestCase {
    func testPartialNeoXRotaryHeadDim80() {
        var rng = SplitMix(seed: 4)
        let heads = 2, hd = 80, rot = 32, T = 5, pos0 = 1000
        let x = (0 ..< T * heads * hd).map { _ in Float.random(in: -1 ... 1, using: &rng) }
        var y = x
        bonsai_rope_neox_forward(&y, Int64(T), Int64(heads * hd), Int32(heads), Int32(hd), Int32(rot), 10000, Int64(pos0))
        for t in 0 ..< T {
            for h in 0 ..< heads {
                let base = t * heads * hd + h * hd
                for i in 0 ..< rot / 2 {
                    let angle = Double(pos0 + t) * pow(10000.0, -Double(2 * i) / Double(rot))
                    let a = Double(x[base + i]), b = Double(x[base + i + rot / 2])
                    // f32 angles at position ~1000 carry ~1e-4 rad of rounding (as in transformers)
                    XCTAssertEqual(Double(y[base + i]), a * cos(angle) - b * sin(angle), accuracy: 3e-4)
                    XCTAssertEqual(Double(y[base + i + rot / 2]), b * cos(angle) + a * sin(angle), accuracy: 3e-4)
                }
                for d in rot ..< hd { XCTAssertEqual(y[base + d], x[base + d], "pass-through dim \(d)") }
            }
        }
    }
}
