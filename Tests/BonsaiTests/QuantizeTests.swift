import Bonsai
import BonsaiFormats
import Foundation
import TestSupport
import XCTest

/// `bonsai quantize` against llama.cpp's own tools: the fixture publishes the SHA-256 of every GGUF that
/// convert_hf_to_gguf.py and llama-quantize produced from the fp16 repo, shipped or not. Identical hashes
/// mean identical quantizers, metadata, tensor order and padding. Tolerance: none.
final class QuantizeTests: XCTestCase {
    private func expectedHash(_ key: String) throws -> String {
        let ggufs = try XCTUnwrap(Fixtures.json("summary.json")["ggufs"] as? [String: [String: Any]])
        return try XCTUnwrap(ggufs[key]?["sha256"] as? String)
    }

    func testConvertFromHFReproducesConvertHFToGGUF() throws {
        for scheme in [QuantScheme.f16, .q8_0] {
            let out = Fixtures.temporaryPath("convert-\(scheme).gguf")
            try Quantize.run(input: try Fixtures.path("hf"), output: out, scheme: scheme)
            XCTAssertEqual(try SHA256.hex(ofFile: out), try expectedHash(scheme.rawValue), "\(scheme)")
        }
    }

    func testQuantizeReproducesLlamaQuantize() throws {
        let f16 = Fixtures.temporaryPath("quantize-input-f16.gguf")
        try Quantize.run(input: try Fixtures.path("hf"), output: f16, scheme: .f16)
        for scheme in [QuantScheme.q4_0, .q4_1, .q5_0, .q5_1, .q4_K_M, .q5_K_M, .q6_K] {
            let out = Fixtures.temporaryPath("quantize-\(scheme).gguf")
            try Quantize.run(input: f16, output: out, scheme: scheme)
            XCTAssertEqual(try SHA256.hex(ofFile: out), try expectedHash(scheme.rawValue), "\(scheme)")
        }
    }

    func testFusedQKVRewriteMatchesGGUFPy() throws {
        let out = Fixtures.temporaryPath("fused-check.gguf")
        try GGUFExport.fuseQKV(gguf: GGUFFile(path: try Fixtures.path("gguf/model-q8_0.gguf")), to: out)
        XCTAssertEqual(try SHA256.hex(ofFile: out), try expectedHash("q8_0-fused-qkv"))
    }

    func testSHA256() {
        XCTAssertEqual(SHA256.hex(of: Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(of: Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    /// The 2-3 bit files from the HF repo: Quantize.run gives every tensor the type the scheme's rules give
    /// it (the rules themselves are held to llama-quantize by the tests below, the q2_K/q3_K bytes by
    /// QuantVectorTests), and the model loads and runs from them.
    func testQ2KAndQ3KMFilesFromHF() throws {
        for scheme in [QuantScheme.q2_K, .q3_K_M] {
            let out = Fixtures.temporaryPath("quantize-\(scheme).gguf")
            try Quantize.run(input: try Fixtures.path("hf"), output: out, scheme: scheme)
            let g = try GGUFFile(path: out)
            let layers = try XCTUnwrap(g["phi2.block_count"]?.int)
            XCTAssertEqual(g["general.file_type"]?.int, scheme.fileType)
            for info in g.tensorInfos {
                let layer = info.name.hasPrefix("blk.") ? Int(info.name.split(separator: ".")[1]) : nil
                let want = QuantScheme.fitting(scheme.type(forTensor: info.name, layer: layer, layers: layers, isMatrix: info.ne.count == 2),
                                               cols: info.ne[0])
                XCTAssertEqual(info.type, want, "\(scheme) \(info.name)")
            }
            let session = try Session(try ModelLoader.load(path: out), nCtx: 64)
            try session.feed(session.tokenizer.encode("The ocean is"))
            let logits = session.activations.logits.array
            XCTAssertTrue(logits.allSatisfy(\.isFinite) && logits.contains { $0 != 0 }, "\(scheme)")
        }
    }

    /// llama.cpp's Q4_K_S mix. The expected tensors are what llama_model_quantize (llama-cpp-python
    /// 0.3.36, ftype 14) gave a bonsai-synth f16 phi2 of 8 and of 32 layers: q5_K for attn_v of layers 0-3
    /// and ffn_down of layers below n/8, q6_K for output.weight, q4_K elsewhere. Q5_K_S (ftype 16) came out
    /// byte-identical to `bonsai quantize --type q5_K` with no such step.
    func testQ4KSMixMatchesLlamaQuantize() {
        for (layers, expected) in [(8, ["blk.0.attn_v.weight", "blk.1.attn_v.weight", "blk.2.attn_v.weight",
                                        "blk.3.attn_v.weight", "blk.0.ffn_down.weight"]),
                                   (32, (0 ..< 4).flatMap { ["blk.\($0).attn_v.weight", "blk.\($0).ffn_down.weight"] })] {
            var q5: Set<String> = []
            for l in 0 ..< layers {
                for n in ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down"] {
                    let name = "blk.\(l).\(n).weight"
                    let t = QuantScheme.q4_K_S.type(forTensor: name, layer: l, layers: layers, isMatrix: true)
                    if t == .q5_K { q5.insert(name) } else { XCTAssertEqual(t, .q4_K, name) }
                    XCTAssertEqual(QuantScheme.q5_K_S.type(forTensor: name, layer: l, layers: layers, isMatrix: true), .q5_K, name)
                }
            }
            XCTAssertEqual(q5, Set(expected), "\(layers) layers")
            XCTAssertEqual(QuantScheme.q4_K_S.type(forTensor: "output.weight", layer: nil, layers: layers, isMatrix: true), .q6_K)
            XCTAssertEqual(QuantScheme.q4_K_S.type(forTensor: "token_embd.weight", layer: nil, layers: layers, isMatrix: true), .q4_K)
        }
    }

    /// The 2-3 bit mixes against llama_model_quantize on bonsai-synth f16 phi2 files: Q2_K (ftype 10) gives
    /// q3_K to attn_v, attn_output and ffn_down of every layer; Q3_K_S (ftype 11) is q3_K throughout; all
    /// put output.weight in q6_K.
    func testQ2KAndQ3KMixesMatchLlamaQuantize() {
        for l in [0, 5, 31] {
            for (n, q2) in [("attn_q", TensorType.q2_K), ("attn_k", .q2_K), ("attn_v", .q3_K), ("attn_output", .q3_K),
                            ("ffn_up", .q2_K), ("ffn_down", .q3_K)] {
                XCTAssertEqual(QuantScheme.q2_K.type(forTensor: "blk.\(l).\(n).weight", layer: l, layers: 32, isMatrix: true), q2, n)
                XCTAssertEqual(QuantScheme.q3_K_S.type(forTensor: "blk.\(l).\(n).weight", layer: l, layers: 32, isMatrix: true), .q3_K, n)
            }
        }
        XCTAssertEqual(QuantScheme.q2_K.type(forTensor: "output.weight", layer: nil, layers: 32, isMatrix: true), .q6_K)
        XCTAssertEqual(QuantScheme.q2_K.type(forTensor: "token_embd.weight", layer: nil, layers: 32, isMatrix: true), .q2_K)
        XCTAssertEqual([QuantScheme.q2_K.fileType, QuantScheme.q3_K_S.fileType, QuantScheme.q3_K_M.fileType, QuantScheme.q3_K_L.fileType],
                       [10, 11, 12, 13])
        // Q3_K_L (ftype 13) at 8 and 32 layers: attn_v, attn_output and ffn_down q5_K in every layer
        for l in [0, 7] {
            let t = { (n: String) in QuantScheme.q3_K_L.type(forTensor: "blk.\(l).\(n).weight", layer: l, layers: 8, isMatrix: true) }
            XCTAssertEqual([t("attn_v"), t("attn_output"), t("ffn_down"), t("attn_q"), t("attn_k"), t("ffn_up")],
                           [.q5_K, .q5_K, .q5_K, .q3_K, .q3_K, .q3_K])
        }
        // Q3_K_M (ftype 12) at 8 and 32 layers: attn_v q5_K in layers 0-1 then q4_K; ffn_down q5_K below
        // n/16 then q4_K; attn_output q4_K; attn_q, attn_k, ffn_up and token_embd q3_K
        for (layers, l, v, down) in [(8, 0, TensorType.q5_K, TensorType.q4_K), (8, 2, .q4_K, .q4_K),
                                     (32, 1, .q5_K, .q5_K), (32, 2, .q4_K, .q4_K), (32, 31, .q4_K, .q4_K)] {
            let t = { (n: String) in QuantScheme.q3_K_M.type(forTensor: "blk.\(l).\(n).weight", layer: l, layers: layers, isMatrix: true) }
            XCTAssertEqual([t("attn_v"), t("ffn_down"), t("attn_output"), t("attn_q"), t("attn_k"), t("ffn_up")],
                           [v, down, .q4_K, .q3_K, .q3_K, .q3_K], "\(layers) layers, layer \(l)")
        }
    }

    /// llama.cpp's IQ4_NL (ftype 25) and IQ4_XS (ftype 30) mixes without an importance matrix, as
    /// llama_model_quantize wrote them from bonsai-synth f16 phi2 files of 9 layers × 512 and 4 × 160
    /// (whole files cmp-identical to `bonsai quantize`): ffn_down below n/8 in q5_K, output.weight q6_K
    /// (q8_0 where 160 is not whole 256-blocks), and iq4_xs rows of 160 in iq4_nl.
    func testIQ4MixesMatchLlamaQuantize() {
        for scheme in [QuantScheme.iq4_nl, .iq4_xs] {
            for (layers, l, down) in [(9, 0, TensorType.q5_K), (9, 1, scheme.baseType), (32, 3, .q5_K), (32, 4, scheme.baseType)] {
                let t = { (n: String) in scheme.type(forTensor: "blk.\(l).\(n).weight", layer: l, layers: layers, isMatrix: true) }
                XCTAssertEqual([t("ffn_down"), t("attn_v"), t("attn_output"), t("attn_q"), t("ffn_up")],
                               [down, scheme.baseType, scheme.baseType, scheme.baseType, scheme.baseType], "\(scheme) layer \(l) of \(layers)")
            }
            XCTAssertEqual(scheme.type(forTensor: "output.weight", layer: nil, layers: 9, isMatrix: true), .q6_K)
            XCTAssertEqual(scheme.type(forTensor: "token_embd.weight", layer: nil, layers: 9, isMatrix: true), scheme.baseType)
        }
        XCTAssertEqual([QuantScheme.iq4_nl.fileType, QuantScheme.iq4_xs.fileType], [25, 30])
        XCTAssertEqual(QuantScheme.fitting(.iq4_xs, cols: 160), .iq4_nl)
        XCTAssertEqual(QuantScheme.fitting(.iq4_xs, cols: 2560), .iq4_xs)
        XCTAssertEqual(QuantScheme.fitting(.iq4_nl, cols: 160), .iq4_nl)
    }

    /// A fused attn_qkv (older phi-2 GGUFs) takes attn_v's rules in today's llama-quantize: seen with
    /// llama_model_quantize on a 32-layer synth f16 phi2 rewritten with fused q/k/v, where every K file came
    /// out identical to ours (the "one step up" of older llama.cpp gave q5_K in every q4_K_M layer).
    func testFusedQKVTakesAttnVRules() {
        let qkv = { (s: QuantScheme, l: Int) in s.type(forTensor: "blk.\(l).attn_qkv.weight", layer: l, layers: 32, isMatrix: true) }
        XCTAssertEqual([qkv(.q4_K_M, 0), qkv(.q4_K_M, 4), qkv(.q5_K_M, 3), qkv(.q5_K_M, 4), qkv(.q3_K_M, 1), qkv(.q3_K_M, 2),
                        qkv(.q2_K, 9), qkv(.q4_K_S, 3), qkv(.q4_K_S, 4), qkv(.q4_0, 0)],
                       [.q6_K, .q4_K, .q6_K, .q5_K, .q5_K, .q4_K, .q3_K, .q5_K, .q4_K, .q4_0])
    }

    /// --type takes llama-quantize's names in any case; q3_K, q4_K and q5_K are its aliases of the _M mixes.
    func testSchemeNamesAsLlamaQuantize() {
        XCTAssertEqual(QuantScheme(name: "Q4_K_M"), .q4_K_M)
        XCTAssertEqual(QuantScheme(name: "q4_k"), .q4_K_M)
        XCTAssertEqual(QuantScheme(name: "Q5_K"), .q5_K_M)
        XCTAssertEqual(QuantScheme(name: "q3_K"), .q3_K_M)
        XCTAssertEqual(QuantScheme(name: "q4_K_S"), .q4_K_S)
        XCTAssertEqual(QuantScheme(name: "Q8_0"), .q8_0)
        XCTAssertEqual(QuantScheme(name: "IQ4_XS"), .iq4_xs)
        XCTAssertNil(QuantScheme(name: "iq2_xxs"))
    }
}
