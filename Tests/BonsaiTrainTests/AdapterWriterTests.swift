import Bonsai
import BonsaiFormats
import BonsaiTrain
import Foundation
import TestSupport
import XCTest

/// Adapters written by us read back identically, and the GGUF one is the converter's file byte for byte.
final class AdapterWriterTests: XCTestCase {
    func testGGUFAdapterIsByteIdenticalToConvertLoraToGGUF() throws {
        let c = try ModelLoader.load(path: try Fixtures.path("hf")).model.config
        let a = try LoRAAdapter.load(path: try Fixtures.path("lora/peft"), config: c)
        for (type, fixture) in [(TensorType.f32, "lora/adapter-f32.gguf"), (.f16, "lora/adapter-f16.gguf")] {
            let out = Fixtures.temporaryPath("adapter-\(type).gguf")
            try AdapterWriter.writeGGUF(a, to: out, name: "Peft", type: type)
            XCTAssertEqual(try SHA256.hex(ofFile: out), try SHA256.hex(ofFile: try Fixtures.path(fixture)), "\(type)")
        }
    }

    func testPEFTFolderRoundTrips() throws {
        let c = try ModelLoader.load(path: try Fixtures.path("hf")).model.config
        let a = try LoRAAdapter.load(path: try Fixtures.path("lora/peft"), config: c)
        let dir = Fixtures.temporaryPath("peft-roundtrip")
        try AdapterWriter.writePEFT(a, to: dir, baseModel: "microsoft/phi-2")
        let b = try LoRAAdapter.load(path: dir, config: c)
        XCTAssertEqual(b.rank, a.rank)
        XCTAssertEqual(b.alpha, a.alpha)
        for l in 0 ..< c.num_hidden_layers {
            for t in LoRATarget.allCases {
                XCTAssertEqual(b.pairs[l][t]?.A.array, a.pairs[l][t]?.A.array)
                XCTAssertEqual(b.pairs[l][t]?.B.array, a.pairs[l][t]?.B.array)
            }
        }
        // same tensor names and shapes as PEFT's own file
        let mine = try SafetensorsFile(path: dir + "/adapter_model.safetensors")
        let peft = try SafetensorsFile(path: try Fixtures.path("lora/peft/adapter_model.safetensors"))
        XCTAssertEqual(Set(mine.names), Set(peft.names))
        for n in peft.names { XCTAssertEqual(mine.tensor(n)?.shape, peft.tensor(n)?.shape, n) }
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(config["peft_type"] as? String, "LORA")
        XCTAssertEqual(config["target_modules"] as? [String], ["dense", "fc1", "fc2", "k_proj", "q_proj", "v_proj"])
    }

    /// A rank past LoRAAdapter.maxRank is refused when read (not allocated per token on the stack).
    func testAbsurdRankIsRefused() throws {
        let c = try ModelLoader.load(path: try Fixtures.path("hf")).model.config
        let r = LoRAAdapter.maxRank + 1, d = c.hidden_size
        let pair = LoRAPair(rank: r, inFeatures: d, outFeatures: d, A: FloatBuffer(count: r * d), B: FloatBuffer(count: d * r))
        let a = LoRAAdapter(rank: r, alpha: 16, pairs: [[.q_proj: pair]] + Array(repeating: [:], count: c.num_hidden_layers - 1))
        let dir = Fixtures.temporaryPath("peft-huge-rank")
        try AdapterWriter.writePEFT(a, to: dir, baseModel: "x")
        XCTAssertThrowsError(try LoRAAdapter.load(path: dir, config: c)) { XCTAssertTrue("\($0)".contains("rank"), "\($0)") }
    }
}
