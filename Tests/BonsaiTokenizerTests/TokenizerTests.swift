import BonsaiFormats
import BonsaiTokenizer
import Foundation
import TestSupport
import XCTest

final class TokenizerTests: XCTestCase {
    /// Both ways of building the tokenizer: from GGUF metadata and from the Hugging Face files.
    static func tokenizers() throws -> [(String, Tokenizer)] {
        [("gguf", try Tokenizer(gguf: GGUFFile(path: try Fixtures.path("gguf/model-q4_0.gguf")))),
         ("tokenizer.json", try Tokenizer(hfRepo: try Fixtures.path("hf")))]
    }

    func testTrickyStringsMatchTransformersAndLlamaCpp() throws {
        let vectors = try XCTUnwrap(Fixtures.json("tokenizer/tokenizer_vectors.json")["vectors"] as? [[String: Any]])
        XCTAssertGreaterThan(vectors.count, 30)
        for (name, tok) in try Self.tokenizers() {
            for v in vectors {
                let text = v["text"] as! String
                XCTAssertEqual(tok.encode(text), v["hf_ids"] as! [Int], "\(name): \(text.debugDescription)")
                XCTAssertEqual(tok.encode(text, parseSpecial: false), v["hf_ids_split_special"] as! [Int],
                               "\(name), no special: \(text.debugDescription)")
                XCTAssertEqual(tok.encode(text, parseSpecial: false), v["llama_cpp_ids_no_parse_special"] as! [Int])
                XCTAssertEqual(tok.decode(tok.encode(text), special: true), text, "\(name) round trip")
            }
        }
    }

    func testVocabJSONAndMergesAloneGiveTheSameIDs() throws {
        // a folder with only vocab.json + merges.txt + added_tokens.json (+ special_tokens_map.json)
        let dir = Fixtures.temporaryPath("vocab-only")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json"] {
            try FileManager.default.copyItem(atPath: try Fixtures.path("hf/" + f), toPath: dir + "/" + f)
        }
        let slow = try Tokenizer(hfRepo: dir)
        let fast = try Tokenizer(hfRepo: try Fixtures.path("hf"))
        for p in try Fixtures.prompts() { XCTAssertEqual(slow.encode(p.text), fast.encode(p.text), p.name) }
    }

    /// Token ids a damaged tokenizer can name: an added token at Int.max (the table size overflowed) or at
    /// 3e9 (a 48 GB table), and GGUF eos/bos ids outside the vocabulary. Each is one error naming the file.
    func testImplausibleTokenIDsAreErrors() throws {
        let dir = Fixtures.temporaryPath("bad-ids")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var json = try HFRepo.readJSONObject(try Fixtures.path("hf/tokenizer.json"))
        var added = try XCTUnwrap(json["added_tokens"] as? [[String: Any]])
        for id in [Int.max, 3_000_000_000] {
            added[0]["id"] = id
            json["added_tokens"] = added
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
            XCTAssertThrowsError(try Tokenizer(hfRepo: dir), "\(id)") { XCTAssertTrue("\($0)".contains("token id \(id)"), "\($0)") }
        }

        let g = try GGUFFile(path: try Fixtures.path("gguf/model-q4_0.gguf"))
        for (key, id) in [("tokenizer.ggml.eos_token_id", UInt32.max), ("tokenizer.ggml.bos_token_id", 51200)] {
            var w = GGUFWriter()
            w.metadata = g.metadata
            w.set(key, .uint32(id))
            let out = Fixtures.temporaryPath("bad-\(key).gguf")
            try w.write(to: out)
            XCTAssertThrowsError(try Tokenizer(gguf: GGUFFile(path: out)), key) { XCTAssertTrue("\($0)".contains("\(key) \(id)"), "\($0)") }
        }
    }

    func testPromptIDs() throws {
        for (name, tok) in try Self.tokenizers() {
            for p in try Fixtures.prompts() { XCTAssertEqual(tok.encode(p.text), p.ids, "\(name): \(p.name)") }
        }
    }

    /// llama.cpp's GPT-2 vocabulary tests, with the PHI-2 ids (they differ from GPT-2's only where runs
    /// of spaces or tabs meet PHI-2's added whitespace tokens).
    func testLlamaCppGPT2VocabTests() throws {
        let data = try Fixtures.json("tokenizer/gpt2_vocab_tests_vs_phi2.json")
        let cases = try XCTUnwrap(data["tests"] as? [[String: Any]])
        let tok = try Tokenizer(gguf: GGUFFile(path: try Fixtures.path("gguf/model-q8_0.gguf")))
        var n = 0
        for c in cases {
            let text = c["text"] as! String, ids = c["phi2_ids"] as! [Int]
            XCTAssertEqual(tok.encode(text), ids, text.debugDescription)
            if c["has_whitespace_run"] as? Bool == false { XCTAssertEqual(ids, c["gpt2_ids"] as! [Int], "GPT-2 and PHI-2 agree here") }
            n += 1
        }
        XCTAssertGreaterThanOrEqual(n, 40)
    }

    /// Streaming a token at a time never yields a broken character, and adds up to the whole text.
    func testStreamingDecodeNeverSplitsACharacter() throws {
        let tok = try Tokenizer(hfRepo: try Fixtures.path("hf"))
        for p in try Fixtures.prompts() {
            var d = StreamingDecoder(tokenizer: tok)
            var out = ""
            for id in p.ids {
                let piece = d.append(id)
                XCTAssertFalse(piece.contains("\u{FFFD}"), "\(p.name): broken character emitted")
                out += piece
            }
            out += d.flush()
            XCTAssertEqual(out, p.text, p.name)
        }
    }

    func testPaddingIDsAreNeverSampleable() throws {
        let tok = try Tokenizer(gguf: GGUFFile(path: try Fixtures.path("gguf/model-q8_0.gguf")))
        XCTAssertEqual(tok.count, 51200)
        XCTAssertTrue(tok.isSampleable(50294))
        XCTAssertTrue(tok.isSampleable(50256))
        XCTAssertFalse(tok.isSampleable(50295))
        XCTAssertFalse(tok.isSampleable(51199))
        let hf = try Tokenizer(hfRepo: try Fixtures.path("hf"))
        XCTAssertEqual(hf.count, 50295)
        XCTAssertFalse(hf.isSampleable(50295))
    }
}
