import BonsaiFormats
import Foundation
import TestSupport
import XCTest

final class SafetensorsTests: XCTestCase {
    func testShardedRepoResolvesEveryTensor() throws {
        let repo = try HFRepo(path: try Fixtures.path("hf"))
        XCTAssertEqual(repo.tensorNames.count, 2 * 14 + 5)   // 14 per layer (7 weights, 7 biases/norms) + 5
        let embed = try XCTUnwrap(repo.tensor("model.embed_tokens.weight"))
        XCTAssertEqual(embed.type, .f16)
        XCTAssertEqual(embed.shape, [51200, 256])
        XCTAssertEqual(repo.tensor("lm_head.bias")?.shape, [51200])
        XCTAssertNotNil(repo.tensor("model.layers.1.mlp.fc2.weight"))
    }

    func testWriterRoundTrip() throws {
        var w = SafetensorsWriter()
        w.add("b", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
        w.add("a", shape: [1], floats: [-1])
        w.metadata["format"] = "pt"
        let path = Fixtures.temporaryPath("rt.safetensors")
        try w.write(to: path)
        let f = try SafetensorsFile(path: path)
        XCTAssertEqual(f.floats("b"), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(f.tensor("b")?.shape, [2, 3])
        XCTAssertEqual(f.floats("a"), [-1])
        XCTAssertEqual(f.metadata["format"], "pt")
    }

    private func expectError(_ bytes: [UInt8], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let path = Fixtures.temporaryPath("bad-\(UUID().uuidString).safetensors")
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        XCTAssertThrowsError(try SafetensorsFile(path: path), what, file: file, line: line) { error in
            XCTAssertTrue("\(error)".hasPrefix(path), "\(error)", file: file, line: line)
        }
    }

    private func file(header: String, data: Int) -> [UInt8] {
        let h = Array(header.utf8)
        return withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) } + h + [UInt8](repeating: 0, count: data)
    }

    func testMalformedFiles() {
        expectError([], "empty")
        expectError([1, 2, 3], "shorter than the length field")
        expectError(withUnsafeBytes(of: UInt64.max) { Array($0) }, "absurd header length")
        expectError(file(header: "not json", data: 0), "header not JSON")
        expectError(file(header: #"{"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}"#, data: 16), "size mismatch")
        expectError(file(header: #"{"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#, data: 8), "past the end")
        expectError(file(header: #"{"x": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}"#, data: 16), "negative dim")
        expectError(file(header: #"{"x": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 16]}}"#, data: 16), "overflowing shape")
        expectError(file(header: #"{"x": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}"#, data: 8), "unknown dtype")
        expectError(file(header: #"{"x": {"dtype": "F32"}}"#, data: 0), "missing fields")
    }
}
