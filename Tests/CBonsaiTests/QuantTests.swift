import Bonsai
import BonsaiFormats
import CBonsai
import TestSupport
import XCTest

/// The scalar references against llama.cpp's own numbers, and the kernels against the references.
final class QuantTests: XCTestCase {
    /// Every finite f16 survives f16 → f32 → f16 unchanged; f32 → f16 rounds to nearest even.
    func testHalfConversionsAreExact() {
        for h in 0 ... 0xFFFF {
            let f = bonsai_f16_to_f32(UInt16(h))
            if f.isNaN { continue }
            XCTAssertEqual(bonsai_f32_to_f16(f), UInt16(h), "f16 bits \(h)")
            XCTAssertEqual(Float(Float16(bitPattern: UInt16(h))), f, "f16 bits \(h)")
        }
        // halfway cases round to even, and overflow to infinity
        XCTAssertEqual(bonsai_f32_to_f16(1 + 1.0 / 2048), 0x3C00)           // 1 + half ulp → 1
        XCTAssertEqual(bonsai_f32_to_f16(1 + 3.0 / 2048), 0x3C02)           // 1 + 1.5 ulp → 1 + 2 ulp
        XCTAssertEqual(bonsai_f32_to_f16(65520), 0x7C00)
        XCTAssertEqual(bonsai_f32_to_f16(5.960464477539063e-08), 0x0001)    // smallest subnormal
        var rng = SystemRandomNumberGenerator()
        for _ in 0 ..< 100_000 {
            let f = Float(bitPattern: UInt32.random(in: 0 ... 0x477F_E000, using: &rng)) * (Bool.random() ? 1 : -1)
            XCTAssertEqual(bonsai_f32_to_f16(f), Float16(f).bitPattern, "\(f)")
        }
    }

    /// dequant_samples: the first 8 rows of one tensor per type, dequantized by gguf-py (which is
    /// bit-identical to ggml's dequantize_row_*). Ours must be bit-identical too: tolerance 0.
    func testDequantizationMatchesGGUFPyBitForBit() throws {
        let meta = try Fixtures.json("refs/dequant_samples.json")
        let refs = try SafetensorsFile(path: try Fixtures.path("refs/dequant_samples.safetensors"))
        let samples = try XCTUnwrap(meta["samples"] as? [[String: Any]])
        var types = Set<String>()
        for s in samples {
            let gguf = try GGUFFile(path: try Fixtures.path(s["gguf"] as! String))
            let t = try XCTUnwrap(gguf.tensor(s["tensor"] as! String))
            let expected = try XCTUnwrap(refs.floats(s["key"] as! String))
            let n = 8 * t.cols
            var got = [Float](repeating: .nan, count: n)
            XCTAssertTrue(bonsai_dequantize_row(Int32(t.type.rawValue), t.data, &got, Int64(n)))
            XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "\(s["key"]!)")
            types.insert(t.type.description)
        }
        XCTAssertEqual(types, ["q8_0", "q4_0", "q4_K", "q6_K"])
    }

    /// The K-type quantizers fit 8 sub-blocks at once in SIMD lanes; they must give the reference search's
    /// bytes (the one QuantizeTests holds to llama-quantize's) on every kind of block, including those the
    /// lanes turn into masks: all-zero and constant sub-blocks, all-positive and all-negative ones, lone
    /// outliers, values too small to quantize, and ordinary data at many scales. Tolerance: none.
    func testLaneQuantizersEqualTheReference() {
        var rng = SplitMix(seed: 7)
        var blocks: [[Float]] = []
        func normal() -> Float {
            let u = Float.random(in: Float.ulpOfOne ..< 1, using: &rng), v = Float.random(in: 0 ..< 1, using: &rng)
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        for scale in [Float(1e-3), 0.02, 1, 300] {
            for _ in 0 ..< 64 { blocks.append((0 ..< 256).map { _ in normal() * scale }) }
        }
        // special sub-blocks (16 elements: q6_K's size, half of q4_K's) mixed into ordinary blocks
        let specials: [(Int) -> Float] = [
            { _ in 0 }, { _ in 0.5 }, { _ in -0.25 }, { _ in 1e-20 }, { i in Float(i - 8) * 1e-17 }, { i in i == 5 ? 40 : 0.01 },
            { i in Float(i) * 0.1 + 1 }, { i in -Float(i) * 0.1 - 1 }, { i in i % 2 == 0 ? 1 : -1 },
        ]
        for k in 0 ..< 256 {
            var b = (0 ..< 256).map { _ in normal() * 0.05 }
            for s in 0 ..< 16 where (k >> (s % 8)) & 1 == 1 || s == k % 16 {
                let f = specials[(k + s) % specials.count]
                for i in 0 ..< 16 { b[16 * s + i] = f(i) }
            }
            blocks.append(b)
        }
        for c in [Float(0), 3, -0.5] { blocks.append([Float](repeating: c, count: 256)) }
        blocks.append((0 ..< 256).map { i in (i / 32) % 2 == 0 ? -0.75 : normal() })   // constant sub-blocks of 32
        let row = blocks.flatMap { $0 }
        for type in [TensorType.q2_K, .q4_K, .q5_K, .q6_K, .iq4_nl, .iq4_xs] {
            let bytes = type.byteCount(elements: row.count)!
            var fast = [UInt8](repeating: 0, count: bytes), reference = [UInt8](repeating: 1, count: bytes)
            XCTAssertTrue(bonsai_quantize_row(Int32(type.rawValue), row, &fast, Int64(row.count)))
            XCTAssertTrue(bonsai_quantize_row_reference(Int32(type.rawValue), row, &reference, Int64(row.count)))
            let blockBytes = bytes / blocks.count
            let differing = (0 ..< blocks.count).filter {
                fast[$0 * blockBytes ..< ($0 + 1) * blockBytes] != reference[$0 * blockBytes ..< ($0 + 1) * blockBytes]
            }
            XCTAssertEqual(differing, [], "\(type): blocks whose bytes differ from the reference search")
        }
    }

    /// Our reference quantizers give the same bytes as llama.cpp's: model-q8_0.gguf was quantized from the
    /// f16 weights by gguf-py (byte-identical to llama-quantize), model-q4_0.gguf by llama-quantize.
    func testQuantizersReproduceLlamaCppBytes() throws {
        let repo = try HFRepo(path: try Fixtures.path("hf"))
        for (file, type) in [("gguf/model-q8_0.gguf", TensorType.q8_0), ("gguf/model-q4_0.gguf", .q4_0)] {
            let gguf = try GGUFFile(path: try Fixtures.path(file))
            var checked = 0
            for info in gguf.tensorInfos where info.type == type {
                let hfName = try XCTUnwrap(TensorNames.hf(fromGGUF: info.name), info.name)
                let src = try XCTUnwrap(repo.tensor(hfName)?.floats(), hfName)
                var out = [UInt8](repeating: 0, count: info.byteCount)
                XCTAssertTrue(bonsai_quantize_row(Int32(type.rawValue), src, &out, Int64(src.count)))
                let expected = UnsafeRawBufferPointer(start: gguf.tensor(info.name)!.data, count: info.byteCount)
                XCTAssertTrue(out.elementsEqual(expected), "\(file) \(info.name): bytes differ")
                checked += 1
            }
            XCTAssertGreaterThanOrEqual(checked, 13, file)
        }
    }

    /// The matmul kernel (dequantize tile + dispatched f32 dot) against a double-precision product of the
    /// dequantized rows, for every runnable type, with shapes that are not multiples of the tile size.
    /// Tolerance: f32 accumulation over `cols` terms of size ≤ 1: relative 1e-5 of Σ|w·x|.
    func testMatmulMatchesReferenceForEveryType() {
        bonsai_set_math(BONSAI_MATH_F32)   // the exact path (the int8 one: KernelTests, UnpackedMatmulTests)
        var rng = SplitMix(seed: 7)
        for type in [TensorType.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K,
                     .iq4_nl, .iq4_xs] {
            let rows = 37, cols = 512, T = 3
            let rowBytes = type.byteCount(elements: cols)!
            // random blocks: valid bytes for every type; keep the f16 scales finite and small
            var w = [UInt8](repeating: 0, count: rows * rowBytes)
            for i in w.indices { w[i] = UInt8.random(in: 0 ... 255, using: &rng) }
            if type.isQuantized || type == .f16 || type == .bf16 || type == .f32 {
                var dense = [Float](repeating: 0, count: rows * cols)
                for i in dense.indices { dense[i] = Float.random(in: -1 ... 1, using: &rng) }
                if type == .f32 || type == .f16 || type == .bf16 || type == .q4_0 || type == .q8_0 {
                    for r in 0 ..< rows {
                        w.withUnsafeMutableBytes { p in
                            _ = bonsai_quantize_row(Int32(type.rawValue), Array(dense[r * cols ..< (r + 1) * cols]),
                                                    p.baseAddress! + r * rowBytes, Int64(cols))
                        }
                    }
                } else {
                    type.setBlockScales(&w, to: 0.01)
                }
            }
            var x = [Float](repeating: 0, count: T * cols)
            for i in x.indices { x[i] = Float.random(in: -1 ... 1, using: &rng) }
            var y = [Float](repeating: 0, count: T * rows)
            let bias = (0 ..< rows).map { Float($0) * 0.01 }
            w.withUnsafeBytes { wp in
                var m = bonsai_matrix(type: Int32(type.rawValue), rows: Int64(rows), cols: Int64(cols),
                                      row_stride: rowBytes, data: wp.baseAddress!)
                bonsai_matmul(&m, x, Int64(T), &y, Int64(rows), bias)
                var row = [Float](repeating: 0, count: cols)
                for r in 0 ..< rows {
                    bonsai_matrix_row(&m, Int64(r), &row)
                    for t in 0 ..< T {
                        var ref = 0.0, mag = 0.0
                        for c in 0 ..< cols {
                            ref += Double(row[c]) * Double(x[t * cols + c])
                            mag += abs(Double(row[c]) * Double(x[t * cols + c]))
                        }
                        ref += Double(bias[r])
                        XCTAssertEqual(Double(y[t * rows + r]), ref, accuracy: 1e-5 * max(mag, 1), "\(type) r\(r) t\(t)")
                    }
                }
            }
        }
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// q2_K, q3_K, iq4_nl and iq4_xs quantizers against llama.cpp's bytes on rows that stress the search
/// (zeros, constants, one sign, tiny, outliers, heavy tails, half zeros, integers): Vectors/quant_vectors.safetensors,
/// written by tools/make_quant_vectors.py through llama_model_quantize. Tolerance: none (bytes compared).
final class QuantVectorTests: XCTestCase {
    func testQuantizersReproduceLlamaCppBytesOnHardRows() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors/quant_vectors.safetensors")
        let f = try SafetensorsFile(path: url.path)
        let input = try XCTUnwrap(f.floats("input"))
        let cols = 256, rows = input.count / cols
        XCTAssertEqual(rows, 64)
        for type in [TensorType.q2_K, .q3_K, .iq4_nl, .iq4_xs] {
            let expected = try XCTUnwrap(f.tensor("\(type).bytes"), "\(type)")
            let rowBytes = try XCTUnwrap(type.byteCount(elements: cols))
            XCTAssertEqual(expected.byteCount, rows * rowBytes)
            let want = [UInt8](UnsafeRawBufferPointer(start: expected.data, count: expected.byteCount))
            for r in 0 ..< rows {
                var got = [UInt8](repeating: 0, count: rowBytes)
                XCTAssertTrue(bonsai_quantize_row(Int32(type.rawValue), Array(input[r * cols ..< (r + 1) * cols]), &got, Int64(cols)))
                XCTAssertEqual(got, Array(want[r * rowBytes ..< (r + 1) * rowBytes]), "\(type) row \(r) (kind \(r % 9))")
            }
        }
    }
}

/// Every quant type's dequantization against gguf-py's (which is bit-identical to ggml's), on random valid
/// blocks: Tests/CBonsaiTests/Vectors/dequant_vectors.safetensors, written by tools/make_dequant_vectors.py.
/// Tolerance: none (bit patterns compared).
final class DequantVectorTests: XCTestCase {
    func testEveryTypeMatchesGGUFPyBitForBit() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Vectors/dequant_vectors.safetensors")
        let f = try SafetensorsFile(path: url.path)
        var checked: [String] = []
        for type in [TensorType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_nl, .iq4_xs] {
            let raw = try XCTUnwrap(f.tensor("\(type).bytes"), "\(type)")
            let expected = try XCTUnwrap(f.floats("\(type).values"))
            var got = [Float](repeating: .nan, count: expected.count)
            XCTAssertEqual(raw.byteCount, type.byteCount(elements: expected.count))
            XCTAssertTrue(bonsai_dequantize_row(Int32(type.rawValue), raw.data, &got, Int64(got.count)))
            XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "\(type)")
            checked.append(type.description)
        }
        XCTAssertEqual(checked.count, 12)
    }
}
