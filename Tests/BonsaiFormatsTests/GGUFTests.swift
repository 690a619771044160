import BonsaiFormats
import Foundation
import TestSupport
import XCTest

final class GGUFTests: XCTestCase {
    func testReadsFixtureMetadataAndTensors() throws {
        let g = try GGUFFile(path: try Fixtures.path("gguf/model-q8_0.gguf"))
        XCTAssertEqual(g.version, 3)
        XCTAssertEqual(g.architecture, "phi2")
        XCTAssertEqual(g["phi2.embedding_length"]?.int, 256)
        XCTAssertEqual(g["phi2.rope.dimension_count"]?.int, 32)
        XCTAssertEqual(g["phi2.attention.layer_norm_epsilon"]?.double ?? 0, 1e-5, accuracy: 1e-12)
        XCTAssertEqual(g["tokenizer.ggml.tokens"]?.array?.count, 51200)
        XCTAssertEqual(g["tokenizer.ggml.merges"]?.array?.count, 50000)
        XCTAssertEqual(g["tokenizer.ggml.add_bos_token"]?.bool, false)
        XCTAssertEqual(g.tensorInfos.count, 33)
        let embd = try XCTUnwrap(g.tensor("token_embd.weight"))
        XCTAssertEqual(embd.type, .q8_0)
        XCTAssertEqual(embd.ne, [256, 51200])
        XCTAssertEqual(embd.shape, [51200, 256])
        XCTAssertEqual(g.tensor("output.weight")?.type, .q8_0)
        XCTAssertEqual(g.tensor("blk.0.attn_norm.bias")?.type, .f32)
    }

    /// Writing a file back gives the same metadata and tensor bytes, with dense aligned offsets.
    func testWriterRoundTripsAFixtureFile() throws {
        let g = try GGUFFile(path: try Fixtures.path("gguf/model-q4_K_M.gguf"))
        var w = GGUFWriter()
        w.metadata = g.metadata
        for t in g.tensors {
            w.tensors.append(.init(name: t.name, type: t.type, ne: t.ne, bytes: UnsafeRawBufferPointer(start: t.data, count: t.byteCount)))
        }
        let out = Fixtures.temporaryPath("roundtrip.gguf")
        try w.write(to: out)
        let r = try GGUFFile(path: out)
        XCTAssertEqual(r.metadata.map(\.key), g.metadata.map(\.key))
        for (a, b) in zip(r.metadata, g.metadata) { XCTAssertEqual(a.value, b.value, a.key) }
        var expectedOffset = 0
        for (a, b) in zip(r.tensorInfos, g.tensorInfos) {
            XCTAssertEqual(a.name, b.name)
            XCTAssertEqual(a.ne, b.ne)
            XCTAssertEqual(a.type, b.type)
            XCTAssertEqual(a.offset, expectedOffset, "offsets are dense, in order, padded to 32")
            expectedOffset += (a.byteCount + 31) / 32 * 32
            XCTAssertEqual(memcmp(r.tensor(a.name)!.data, g.tensor(b.name)!.data, a.byteCount), 0, a.name)
        }
        // same layout as the llama.cpp-written original: the files are byte-identical
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), try Data(contentsOf: URL(fileURLWithPath: g.path)))
    }

    /// A write that fails part-way (here the second tensor's bytes) leaves the file that was at the path
    /// as it was and no temporary file beside it: outputs are written to a temporary file and renamed.
    func testFailedWriteLeavesNoHalfWrittenFile() throws {
        struct Failure: Error {}
        let dir = Fixtures.temporaryPath("atomic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let out = dir + "/model.gguf"
        let before = try smallFile()
        XCTAssertTrue(FileManager.default.createFile(atPath: out, contents: Data(before)))
        var w = GGUFWriter()
        w.set("general.architecture", .string("phi2"))
        let data = [Float](repeating: 2, count: 64 * 1024)
        data.withUnsafeBytes { w.tensors.append(.init(name: "a", type: .f32, ne: [data.count], bytes: $0)) }
        w.tensors.append(.init(name: "b", type: .f32, ne: [64]) { _ in throw Failure() })
        XCTAssertThrowsError(try w.write(to: out)) { XCTAssertTrue($0 is Failure, "\($0)") }
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["model.gguf"])
    }

    // ------------------------------------------------------------------------ hostile input

    private func expectMalformed(_ bytes: [UInt8], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let path = Fixtures.temporaryPath("bad-\(UUID().uuidString).gguf")
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try GGUFFile(path: path), what, file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix(path), "error names the file: \(message)", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
        }
    }

    /// A small valid file: two metadata values and one tensor.
    private func smallFile() throws -> [UInt8] {
        var w = GGUFWriter()
        w.set("general.architecture", .string("phi2"))
        w.set("some.array", .array(elementType: 4, [.uint32(1), .uint32(2), .uint32(3)]))
        let data = [Float](repeating: 1, count: 64)
        data.withUnsafeBytes { w.tensors.append(.init(name: "t", type: .f32, ne: [64], bytes: $0)) }
        let path = Fixtures.temporaryPath("small.gguf")
        try w.write(to: path)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func testTruncatedAtEveryPointIsAnError() throws {
        let good = try smallFile()
        let path = Fixtures.temporaryPath("good.gguf")
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(good)))
        XCTAssertNoThrow(try GGUFFile(path: path))
        for cut in 0 ..< good.count - 1 { expectMalformed(Array(good[0 ..< cut]), "cut at \(cut)") }
    }

    func testBadMagicVersionCountsAndOffsets() throws {
        let good = try smallFile()
        func patched(_ offset: Int, _ value: UInt64, width: Int = 8) -> [UInt8] {
            var b = good
            for i in 0 ..< width { b[offset + i] = UInt8((value >> (8 * UInt64(i))) & 0xFF) }
            return b
        }
        expectMalformed(patched(0, 0x46554746, width: 4), "bad magic")
        expectMalformed(patched(4, 1, width: 4), "version 1")
        expectMalformed(patched(4, 99, width: 4), "version 99")
        expectMalformed(patched(8, UInt64.max), "absurd tensor count")
        expectMalformed(patched(8, 1 << 40), "huge tensor count")
        expectMalformed(patched(16, UInt64.max), "absurd metadata count")
        // first key's string length
        expectMalformed(patched(24, 1 << 50), "absurd key length")
        // find the tensor info: name "t" (len 1), n_dims, dim, type, offset
        let nameAt = try XCTUnwrap(findTensorName(good))
        expectMalformed(patched(nameAt + 9, 7, width: 4), "7 dimensions")
        expectMalformed(patched(nameAt + 13, 1 << 40), "absurd dimension")
        expectMalformed(patched(nameAt + 13, 1 << 20), "dimension past the end of the data")
        expectMalformed(patched(nameAt + 21, 200, width: 4), "unknown type")
        expectMalformed(patched(nameAt + 25, 1 << 40), "offset past the end")
        expectMalformed(patched(nameAt + 25, 3), "misaligned offset")
        var q4With63 = patched(nameAt + 21, 2, width: 4)   // q4_0 ...
        q4With63[nameAt + 13] = 63                             // ... of 63 elements: not whole blocks
        expectMalformed(q4With63, "row not a whole number of blocks")
    }

    /// Found by fuzzing `bonsai info` (mutated tensor infos): a type id past Int32 crashed the reader, and
    /// a name that swallowed binary bytes came out with raw newlines and kilobytes long.
    func testDamagedTypeIdsAndNamesGiveOneShortLine() throws {
        let good = try smallFile()
        let nameAt = try XCTUnwrap(findTensorName(good))
        func withType(_ id: UInt32, _ b: [UInt8]) -> [UInt8] {
            var b = b
            for i in 0 ..< 4 { b[nameAt + 21 + i] = UInt8((id >> (8 * UInt32(i))) & 0xFF) }
            return b
        }
        for id: UInt32 in [0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF] { expectMalformed(withType(id, good), "type id \(id)") }

        // A 3000-byte name of control characters and newlines, on a tensor of an unknown type: the error names it.
        let name = String(repeating: "\u{1}x\ny", count: 750)
        var w = GGUFWriter()
        w.set("general.architecture", .string("phi2"))
        let data = [Float](repeating: 1, count: 64)
        data.withUnsafeBytes { w.tensors.append(.init(name: name, type: .f32, ne: [64], bytes: $0)) }
        let path = Fixtures.temporaryPath("long-name.gguf")
        try w.write(to: path)
        var b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let typeAt = try XCTUnwrap(b.indices.first { b[$0 ..< $0 + 8].elementsEqual(Array(name.utf8.prefix(8))) }) + name.utf8.count + 4 + 8
        b[typeAt] = 200   // an id ggml does not have
        expectMalformed(b, "unknown type on a long name")
        let bad = Fixtures.temporaryPath("long-name-bad.gguf")
        XCTAssertTrue(FileManager.default.createFile(atPath: bad, contents: Data(b)))
        XCTAssertThrowsError(try GGUFFile(path: bad)) { error in
            let message = "\(error)"
            XCTAssertLessThan(message.count, 450, message)
            XCTAssertTrue(message.contains("\\u{01}x\\ny"), "control characters escaped: \(message)")
            XCTAssertTrue(message.hasSuffix("which Bonsai does not support"), "the end is kept: \(message)")
        }
    }

    private func findTensorName(_ b: [UInt8]) -> Int? {
        // the tensor info starts with u64 length 1 followed by "t", after the metadata
        for i in 24 ..< b.count - 9 where b[i] == 1 && b[i + 1 ... i + 7].allSatisfy({ $0 == 0 }) && b[i + 8] == UInt8(ascii: "t") {
            return i
        }
        return nil
    }

    func testArrayOfAbsurdLengthIsRejectedWithoutAllocating() throws {
        var b: [UInt8] = Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(0)) + le(UInt64(1))
        b += le(UInt64(3)) + Array("arr".utf8) + le(UInt32(9)) + le(UInt32(8)) + le(UInt64(1) << 61)
        expectMalformed(b, "array of 2^61 strings")
    }

    private func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}
