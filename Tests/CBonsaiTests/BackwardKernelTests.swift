import BonsaiFormats
import CBonsai
import XCTest

/// The training kernels at shapes the fixture model does not reach (PHI-2's head_dim 80, rows that are not
/// multiples of the kernels' tiles, every weight type), against double-precision references or, for the
/// nonlinear ops, central finite differences of the forward op.
final class BackwardKernelTests: XCTestCase {
    func random(_ n: Int, _ rng: inout SplitMix, _ r: ClosedRange<Float> = -1 ... 1) -> [Float] {
        (0 ..< n).map { _ in Float.random(in: r, using: &rng) }
    }

    /// dX = dY W for every type, against Σ in double of the exactly dequantized rows. The gemm sums in f32
    /// over at most `rows` terms: agreement to 1e-5 of Σ|dy·w|.
    func testMatmulBackwardEveryTypeAndShape() {
        bonsai_set_math(BONSAI_MATH_F32)
        var rng = SplitMix(seed: 21)
        let types: [TensorType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q8_0, .q4_K, .q5_K, .q6_K]
        for type in types {
            for (rows, cols) in [(37, type.blockSize <= 1 ? 100 : 512), (300, 768)] {
                let w = (0 ..< rows).flatMap { _ -> [UInt8] in
                    var b = [UInt8](repeating: 0, count: type.byteCount(elements: cols)!)
                    XCTAssertTrue(bonsai_quantize_row(Int32(type.rawValue), random(cols, &rng), &b, Int64(cols)))
                    return b
                }
                var wf = [Float](repeating: 0, count: rows * cols)
                let stride = type.byteCount(elements: cols)!
                for r in 0 ..< rows {
                    _ = w.withUnsafeBytes { bonsai_dequantize_row(Int32(type.rawValue), $0.baseAddress! + r * stride, &wf[r * cols], Int64(cols)) }
                }
                for T in [1, 7, 13] {
                    let dy = random(T * rows, &rng)
                    var dx = [Float](repeating: 0.5, count: T * cols)
                    w.withUnsafeBytes { p in
                        var m = bonsai_matrix(type: Int32(type.rawValue), rows: Int64(rows), cols: Int64(cols), row_stride: stride, data: p.baseAddress!)
                        bonsai_matmul_backward(&m, dy, Int64(rows), Int64(T), &dx, true)   // accumulate onto 0.5
                    }
                    for t in 0 ..< T {
                        for c in 0 ..< cols {
                            var ref = 0.5, mag = 0.0
                            for r in 0 ..< rows { ref += Double(dy[t * rows + r]) * Double(wf[r * cols + c]); mag += abs(Double(dy[t * rows + r] * wf[r * cols + c])) }
                            XCTAssertEqual(Double(dx[t * cols + c]), ref, accuracy: 1e-5 * mag + 1e-6, "\(type) \(rows)×\(cols) T=\(T) [\(t)][\(c)]")
                        }
                    }
                }
            }
        }
    }

    /// The fast dequantization used for weight tiles equals the reference bit for bit, on every type.
    func testFastDequantizationIsBitIdentical() {
        var rng = SplitMix(seed: 31)
        for type in [TensorType.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K] {
            let n = 1024
            var bytes = [UInt8](repeating: 0, count: type.byteCount(elements: n)!)
            for i in bytes.indices { bytes[i] = UInt8.random(in: 0 ... 255, using: &rng) }
            if type.blockSize > 1 { type.setBlockScales(&bytes, to: 0.0173) }
            if type == .f32 || type == .f16 || type == .bf16 {
                XCTAssertTrue(bonsai_quantize_row(Int32(type.rawValue), random(n, &rng), &bytes, Int64(n)))
            }
            var ref = [Float](repeating: 0, count: n), fast = [Float](repeating: 1, count: n)
            XCTAssertTrue(bonsai_dequantize_row(Int32(type.rawValue), bytes, &ref, Int64(n)))
            bonsai_dequantize_row_fast(Int32(type.rawValue), bytes, &fast, Int64(n))
            XCTAssertEqual(fast.map(\.bitPattern), ref.map(\.bitPattern), "\(type)")
        }
    }

    /// LoRA is linear in A, B and x, so the backward pass must equal the exact directional derivative of
    /// L = Σ dy ⊙ y: ⟨dA, E⟩ = (L(A + E) − L(A)), with and without dropout (same seed in both passes).
    func testLoRABackwardIsTheDerivativeOfItsForward() {
        var rng = SplitMix(seed: 8)
        let T = 7, inF = 80, outF = 37, r = 3, scale: Float = 2
        for dropout: Float in [0, 0.3] {
            let x = random(T * inF, &rng), A = random(r * inF, &rng), B = random(outF * r, &rng), dy = random(T * outF, &rng)
            func L(_ A: [Float], _ B: [Float], _ x: [Float]) -> Double {
                var y = [Float](repeating: 0, count: T * outF)
                bonsai_lora_forward(&y, Int64(outF), nil, x, A, B, Int64(T), Int64(inF), Int64(outF), Int32(r), scale, dropout, 99)
                return zip(y, dy).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            }
            var u = [Float](repeating: 0, count: T * r), y = [Float](repeating: 0, count: T * outF)
            bonsai_lora_forward(&y, Int64(outF), &u, x, A, B, Int64(T), Int64(inF), Int64(outF), Int32(r), scale, dropout, 99)
            var dA = [Float](repeating: 0, count: r * inF), dB = [Float](repeating: 0, count: outF * r), dx = [Float](repeating: 0, count: T * inF)
            var scratch = [Float](repeating: 0, count: 2 * T * r + 2 * T * inF)
            bonsai_lora_backward(&dx, &dA, &dB, dy, Int64(outF), x, u, A, B, Int64(T), Int64(inF), Int64(outF), Int32(r), scale, dropout, 99, &scratch)
            let E1 = random(r * inF, &rng), E2 = random(outF * r, &rng), E3 = random(T * inF, &rng)
            let base = L(A, B, x)
            func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
            XCTAssertEqual(L(zip(A, E1).map { $0 + 1e-2 * $1 }, B, x) - base, 1e-2 * dot(dA, E1), accuracy: 1e-3, "dA, dropout \(dropout)")
            XCTAssertEqual(L(A, zip(B, E2).map { $0 + 1e-2 * $1 }, x) - base, 1e-2 * dot(dB, E2), accuracy: 1e-3, "dB, dropout \(dropout)")
            XCTAssertEqual(L(A, B, zip(x, E3).map { $0 + 1e-2 * $1 }) - base, 1e-2 * dot(dx, E3), accuracy: 1e-3, "dx, dropout \(dropout)")
        }
    }

    /// Attention backward at PHI-2's head_dim 80: central differences of Σ dout ⊙ attention(q, k, v).
    func testAttentionBackwardHeadDim80() {
        var rng = SplitMix(seed: 13)
        let T = 9, H = 2, D = 80, dm = H * D, scale = 1 / Float(D).squareRoot()
        let q = random(T * dm, &rng, -2 ... 2), k = random(T * dm, &rng, -2 ... 2), v = random(T * dm, &rng), dout = random(T * dm, &rng)
        func L(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
            var out = [Float](repeating: 0, count: T * dm), probs = [Float](repeating: 0, count: H * T * T)
            bonsai_attention_train_forward(&out, &probs, q, k, v, Int64(T), Int32(H), Int32(D), scale)
            return zip(out, dout).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        var out = [Float](repeating: 0, count: T * dm), probs = [Float](repeating: 0, count: H * T * T)
        bonsai_attention_train_forward(&out, &probs, q, k, v, Int64(T), Int32(H), Int32(D), scale)
        var dq = [Float](repeating: 0, count: T * dm), dk = dq, dv = dq
        bonsai_attention_backward(&dq, &dk, &dv, dout, q, k, v, probs, Int64(T), Int32(H), Int32(D), scale)
        let eps: Float = 1e-2
        for (name, grad, which) in [("dq", dq, 0), ("dk", dk, 1), ("dv", dv, 2)] {
            for i in [0, 79, 80, 5 * dm + 33, T * dm - 1] {
                var a = [q, k, v], b = [q, k, v]
                a[which][i] += eps
                b[which][i] -= eps
                let fd = (L(a[0], a[1], a[2]) - L(b[0], b[1], b[2])) / Double(2 * eps)
                XCTAssertEqual(Double(grad[i]), fd, accuracy: 2e-3 * max(1, abs(fd)), "\(name)[\(i)]")
            }
        }
        // causal: query 0 sees only key 0, so its softmax is 1 and its dq is exactly zero
        XCTAssertEqual(dq[0 ..< dm].reduce(0) { $0 + abs($1) }, 0)
    }

    func testLayerNormAndGeluBackward() {
        var rng = SplitMix(seed: 17)
        let T = 3, C = 80
        let x = random(T * C, &rng, -3 ... 3), w = random(C, &rng), b = random(C, &rng), dout = random(T * C, &rng)
        func L(_ x: [Float]) -> Double {
            var out = [Float](repeating: 0, count: T * C)
            bonsai_layernorm_forward(&out, nil, nil, x, w, b, Int64(T), Int64(C), 1e-5)
            return zip(out, dout).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        var out = [Float](repeating: 0, count: T * C), mean = [Float](repeating: 0, count: T), rstd = mean
        bonsai_layernorm_forward(&out, &mean, &rstd, x, w, b, Int64(T), Int64(C), 1e-5)
        var dx = [Float](repeating: 0, count: T * C)
        bonsai_layernorm_backward(&dx, dout, x, mean, rstd, w, Int64(T), Int64(C))
        for i in [0, 41, 2 * C + 79] {
            var a = x, c = x
            a[i] += 1e-2
            c[i] -= 1e-2
            XCTAssertEqual(Double(dx[i]), (L(a) - L(c)) / 2e-2, accuracy: 2e-3, "layernorm dx[\(i)]")
        }
        // gelu_new'(x) in double
        let g = random(64, &rng, -6 ... 6), ones = [Float](repeating: 1, count: 64)
        var dg = [Float](repeating: 0, count: 64)
        bonsai_gelu_backward(&dg, g, ones, 64)
        for (xi, d) in zip(g, dg) {
            let x = Double(xi), k = (2 / Double.pi).squareRoot(), u = k * (x + 0.044715 * x * x * x), th = tanh(u)
            XCTAssertEqual(Double(d), 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k * (1 + 3 * 0.044715 * x * x), accuracy: 1e-5)
        }
        // rotary backward undoes rotary forward (a rotation's transpose is its inverse), head_dim 80, 32 rotated
        var y = random(4 * 2 * 80, &rng)
        let y0 = y
        bonsai_rope_neox_forward(&y, 4, 160, 2, 80, 32, 10000, 0)
        bonsai_rope_neox_backward(&y, 4, 160, 2, 80, 32, 10000, 0)
        for (a, c) in zip(y, y0) { XCTAssertEqual(a, c, accuracy: 1e-6) }
    }
}
