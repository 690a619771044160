import Bonsai
import BonsaiFormats
import CBonsai
import Foundation
import TestSupport
import XCTest

/// The default (fast) path: int8 dot products with activations quantized per block, as llama.cpp does.
///
/// It should sit close to llama.cpp on the same file (both round activations to 8 bits the same way;
/// llama.cpp additionally keeps its KV cache in f16), and no further from the fp32 model than llama.cpp.
final class FastPathTests: XCTestCase {
    override func setUp() { bonsai_set_math(BONSAI_MATH_FAST) }
    override func tearDown() { bonsai_set_math(BONSAI_MATH_F32) }

    /// KL(p_fp32 ‖ p_model) of the last-position distributions, averaged over the prompts.
    private func meanKL(_ ref: Reference, _ logits: [[Float]]) throws -> Double {
        var total = 0.0
        for (i, l) in logits.enumerated() {
            let r = try XCTUnwrap(ref.lastLogits(i))
            let lr = Double(Models.logSumExp(r)), lm = Double(Models.logSumExp(l))
            var kl = 0.0
            for j in r.indices {
                let lp = Double(r[j]) - lr
                kl += exp(lp) * (lp - (Double(l[j]) - lm))
            }
            total += kl
        }
        return total / Double(logits.count)
    }

    /// Against llama.cpp's logits (gguf_<type>) and against the exact f32 computation on the same weights
    /// (hf_dequant_<type>). The README's gguf_<type> vs hf_dequant_<type> difference is what llama.cpp's
    /// activation rounding alone does. For q8_0 we may differ from llama.cpp by that much (×1.1, accumulation
    /// order): below 32 tokens both engines round to q8_0 blocks with f16 scales, from 32 tokens on our
    /// prompts are exact and differ from llama.cpp by llama.cpp's own rounding. The prompt path of
    /// the 32-granular types rounds per 32 elements with f32 scales (llama.cpp: f16 scales, and per 256
    /// for the K types), so there the two roundings are independent and |ours − llama.cpp| ≤ |ours − exact| +
    /// |llama.cpp − exact|: 2 × 1.1 × the observed figure. What makes this strict is the second bound: our
    /// distance from the exact result must not exceed llama.cpp's (×1.1), and the KL bound below.
    private func check(_ key: String) throws {
        let m = try Models.load(key)
        let llama = try Fixtures.reference("gguf_\(key)"), fp32 = try Fixtures.reference("hf_fp32")
        let exact = try Fixtures.reference("hf_dequant_\(key)")
        var ours: [[Float]] = [], worst: Float = 0, oursExact: Float = 0, llamaExact: Float = 0
        for (i, p) in try Fixtures.prompts().enumerated() {
            let last = try Models.allLogits(m, p.ids).last!
            ours.append(last)
            let l = try XCTUnwrap(llama.lastLogits(i)), e = try XCTUnwrap(exact.lastLogits(i))
            worst = max(worst, maxAbsDiff(last, l))
            oursExact = max(oursExact, maxAbsDiff(last, e))
            llamaExact = max(llamaExact, maxAbsDiff(l, e))
        }
        let llamaLogits = try (0 ..< ours.count).map { try XCTUnwrap(llama.lastLogits($0)) }
        let klOurs = try meanKL(fp32, ours), klLlama = try meanKL(fp32, llamaLogits)
        print("fast \(key): max |Δ last logits| vs llama.cpp \(worst); vs exact f32: ours \(oursExact), llama.cpp \(llamaExact); KL from fp32: ours \(klOurs), llama.cpp \(klLlama)")
        let sameRounding = key == "q8_0"
        XCTAssertLessThanOrEqual(worst, LogitsTests.llamaCppObserved[key]! * (sameRounding ? 1.1 : 2.2), key)
        XCTAssertLessThanOrEqual(oursExact, llamaExact * 1.1, "\(key): no further from the exact f32 result than llama.cpp")
        XCTAssertLessThanOrEqual(klOurs, klLlama * 1.05, "\(key): KL from fp32 must be no worse than llama.cpp's (5% noise margin)")
    }

    func testQ8_0() throws { try check("q8_0") }
    func testQ4_0() throws { try check("q4_0") }
    func testQ4_K_M() throws { try check("q4_K_M") }

    /// Types whose int8 kernels have no shipped file: we quantize the fixture (byte-identical to
    /// llama-quantize, QuantizeTests) and measure how far our int8 path moves the per-position logsumexp
    /// from the exact f32 computation on the same weights (hf_dequant_<type>), against how far llama.cpp's
    /// int8 path moves it (gguf_<type>, same positions). Mean over all 692 positions (the max of such noise
    /// swings by ±30% between two roundings). Measured ratios ours/llama.cpp: q4_1 0.70, q5_0 0.75,
    /// q5_1 0.84, q5_K_M 0.71, q6_K 0.80 (prompts go through the unpacked kernels, whose activations are
    /// rounded per 32 elements with f32 scales; with per-type kernels and llama.cpp's rounding they were
    /// 0.98–1.12). We require ≤ 1.2: a wrong scale, offset or high bit in a kernel moves these means by ≥ 2×.
    func testTypesWithoutAShippedFile() throws {
        for key in ["q4_1", "q5_0", "q5_1", "q5_K_M", "q6_K"] {
            let m = try Models.load(key)
            let exact = try Fixtures.reference("hf_dequant_\(key)"), llama = try Fixtures.reference("gguf_\(key)")
            var ours = 0.0, theirs = 0.0, worst: Float = 0, n = 0
            for (i, p) in try Fixtures.prompts().enumerated() {
                let lse = try Models.allLogits(m, p.ids).map(Models.logSumExp)
                let e = try XCTUnwrap(exact.logsumexp(i)), l = try XCTUnwrap(llama.logsumexp(i))
                for j in lse.indices {
                    ours += Double(abs(lse[j] - e[j]))
                    theirs += Double(abs(l[j] - e[j]))
                    n += 1
                }
                worst = max(worst, maxAbsDiff(lse, e))
            }
            print("fast \(key): mean |Δ logsumexp| from exact f32 on the same weights: ours \(ours / Double(n)), llama.cpp \(theirs / Double(n)) (our max \(worst))")
            XCTAssertLessThanOrEqual(ours, theirs * 1.2, key)
        }
    }
}
