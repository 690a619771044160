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

    func testRefusesWhatItCannotDo() throws {
        let out = Fixtures.temporaryPath("never.gguf")
        XCTAssertThrowsError(try Quantize.run(input: try Fixtures.path("hf"), output: out, scheme: .q2_K)) {
            XCTAssertTrue("\($0)".contains("q2_K"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no half-written output")
    }
}
