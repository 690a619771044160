import Bonsai
import BonsaiFormats
import Foundation
import TestSupport
import XCTest

/// Bad model files give one clear error, never a crash.
final class LoadingErrorTests: XCTestCase {
    private func expectLoadError(_ path: String, contains: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModelLoader.load(path: path), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(contains), "\(message)", file: file, line: line)
            XCTAssertFalse(message.contains("\n") || message.contains("\u{1b}"), "one line: \(message)", file: file, line: line)
        }
    }

    func testWrongArchitecture() throws {
        let g = try GGUFFile(path: try Fixtures.path("gguf/model-q4_0.gguf"))
        var w = GGUFWriter()
        w.metadata = g.metadata
        w.set("general.architecture", .string("llama"))
        let out = Fixtures.temporaryPath("llama.gguf")
        try w.write(to: out)
        expectLoadError(out, contains: "architecture is llama")

        // The file's own string, quoted in a ModelError, cannot break the line or colour the terminal
        w.set("general.architecture", .string("llama\n\u{1b}[31mred"))
        try w.write(to: out)
        expectLoadError(out, contains: "architecture is llama")
    }

    /// A type Bonsai does not run (iq2_xxs, as a file quantized with an importance matrix could have):
    /// the error names the tensor and the type. The q8_0 file with one tensor's type id rewritten in its
    /// header (name, n_dims u32, n_dims × u64, then the type u32).
    func testUnsupportedTensorType() throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.path("gguf/model-q8_0.gguf")))
        let name = Data("blk.0.attn_q.weight".utf8)
        let at = try XCTUnwrap(bytes.range(of: name)).upperBound
        XCTAssertEqual(bytes[at], 2)   // n_dims
        let typeAt = at + 4 + 2 * 8
        XCTAssertEqual(bytes[typeAt], UInt8(TensorType.q8_0.rawValue))
        bytes[typeAt] = 16   // iq2_xxs
        let out = Fixtures.temporaryPath("iq2.gguf")
        try bytes.write(to: URL(fileURLWithPath: out))
        expectLoadError(out, contains: "tensor blk.0.attn_q.weight has type iq2_xxs")
    }

    func testMissingTensorAndWrongShape() throws {
        let g = try GGUFFile(path: try Fixtures.path("gguf/model-q8_0.gguf"))
        var w = GGUFWriter()
        w.metadata = g.metadata
        for t in g.tensors where t.name != "blk.1.ffn_down.weight" {
            w.tensors.append(.init(name: t.name, type: t.type, ne: t.ne, bytes: UnsafeRawBufferPointer(start: t.data, count: t.byteCount)))
        }
        let out = Fixtures.temporaryPath("missing.gguf")
        try w.write(to: out)
        expectLoadError(out, contains: "tensor blk.1.ffn_down.weight is missing")

        w.set("phi2.embedding_length", .uint32(128))
        try w.write(to: out)
        expectLoadError(out, contains: "shape")
    }

    func testTruncatedModelFiles() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.path("gguf/model-q4_0.gguf")))
        let out = Fixtures.temporaryPath("truncated.gguf")
        for cut in [0, 3, 7, 100, 5000, 1_000_000, data.count / 2, data.count - 1] {
            try data.prefix(cut).write(to: URL(fileURLWithPath: out))
            XCTAssertThrowsError(try ModelLoader.load(path: out), "cut at \(cut)") {
                XCTAssertTrue("\($0)".hasPrefix(out), "\($0)")
            }
        }
    }

    /// Numbers a damaged config.json can hold: too large for Int (Int(Double) trapped on 1e300), not
    /// whole, a rotary fraction outside 0...1, or a head count that does not divide the width (0 would
    /// divide by zero). Each is a badConfig error.
    func testConfigNumbersOutOfRange() throws {
        let good: [String: Any] = ["model_type": "phi", "hidden_size": 160, "intermediate_size": 640, "num_hidden_layers": 2,
                                   "num_attention_heads": 2, "vocab_size": 1000, "partial_rotary_factor": 0.4]
        XCTAssertNoThrow(try Phi2Config(hf: good, path: "config.json"))
        for (key, value) in [("hidden_size", 1e300), ("hidden_size", 2.5), ("vocab_size", -1e300),
                             ("partial_rotary_factor", 1e300), ("partial_rotary_factor", -0.5),
                             ("num_attention_heads", 0), ("num_attention_heads", 3)] as [(String, Any)] {
            var c = good
            c[key] = value
            XCTAssertThrowsError(try Phi2Config(hf: c, path: "config.json"), "\(key) \(value)") { error in
                XCTAssertTrue("\(error)".contains("config.json"), "\(error)")
            }
        }
    }

    func testNotAModel() throws {
        expectLoadError("/nonexistent/model.gguf", contains: "no such file")
        let dir = Fixtures.temporaryPath("empty-dir")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        expectLoadError(dir, contains: "config.json")
        let json = Fixtures.temporaryPath("garbage.gguf")
        try Data("{\"hello\": 1}".utf8).write(to: URL(fileURLWithPath: json))
        expectLoadError(json, contains: "bad magic")
    }
}
