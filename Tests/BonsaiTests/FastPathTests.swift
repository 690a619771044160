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

    /// Tolerance vs llama.cpp: the README's gguf_<type> vs hf_dequant_<type> difference (what activation
    /// rounding alone does) — the two engines round the same activations but accumulate differently.
    private func check(_ key: String) throws {
        let m = try Models.load(key)
        let llama = try Fixtures.reference("gguf_\(key)"), fp32 = try Fixtures.reference("hf_fp32")
        var ours: [[Float]] = [], worst: Float = 0
        for (i, p) in try Fixtures.prompts().enumerated() {
            let last = try Models.allLogits(m, p.ids).last!
            ours.append(last)
            worst = max(worst, maxAbsDiff(last, try XCTUnwrap(llama.lastLogits(i))))
        }
        let llamaLogits = try (0 ..< ours.count).map { try XCTUnwrap(llama.lastLogits($0)) }
        let klOurs = try meanKL(fp32, ours), klLlama = try meanKL(fp32, llamaLogits)
        print("fast \(key): max |Δ last logits| vs llama.cpp \(worst); KL from fp32: ours \(klOurs), llama.cpp \(klLlama)")
        XCTAssertLessThanOrEqual(worst, LogitsTests.llamaCppObserved[key]! * 1.1, key)
        XCTAssertLessThanOrEqual(klOurs, klLlama * 1.05, "\(key): KL from fp32 must be no worse than llama.cpp's (5% noise margin)")
    }

    func testQ8_0() throws { try check("q8_0") }
    func testQ4_0() throws { try check("q4_0") }
    func testQ4_K_M() throws { try check("q4_K_M") }
}
