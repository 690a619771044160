import Bonsai
import BonsaiFormats
import BonsaiTokenizer
import BonsaiTrain
import Foundation
import TestSupport
import XCTest

final class TrainingDataTests: XCTestCase {
    static func tokenizer() throws -> Tokenizer { try Tokenizer(hfRepo: try Fixtures.path("hf")) }

    func write(_ lines: [String], _ name: String) -> String {
        let p = Fixtures.temporaryPath(name)
        try? lines.joined(separator: "\n").write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    /// The fixture's three SFT examples, as {"instruction", "response"} lines, give exactly the batch's
    /// input_ids and its loss mask (labels != -100).
    func testFixtureExamplesTokenizeAndMaskLikeTheReference() throws {
        let ref = try Fixtures.json("train/train_reference.json")
        let examples = try XCTUnwrap(ref["examples"] as? [[String: Any]])
        let lines = try examples.map { e -> String in
            let o = ["instruction": e["instruction"]!, "response": e["response"]!]
            return String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
        }
        let d = try Dataset(path: write(lines, "fixture.jsonl"), tokenizer: try Self.tokenizer(), maxTokens: 512)
        let batch = try GradientTests.batch()
        XCTAssertEqual(d.examples.count, 3)
        for (i, e) in d.examples.enumerated() {
            XCTAssertEqual(e.tokens, batch.tokens[i], "example \(i) tokens")
            XCTAssertEqual(e.targets, batch.targets[i], "example \(i) loss mask")
            XCTAssertEqual(e.tokens.count, examples[i]["n_tokens"] as? Int)
            XCTAssertEqual(e.trained.firstIndex(of: true), examples[i]["n_prompt_tokens"] as? Int)
        }
    }

    func testEveryShapeRendersInTheQAFormat() throws {
        func render(_ json: String) throws -> TrainingExample {
            try TrainingExample(json: try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]))
        }
        XCTAssertEqual(try render(#"{"instruction": "Add 2 and 3.", "input": "Show work.", "reasoning": "2 + 3 = 5.", "response": "5"}"#).annotated,
                       "Instruct: Add 2 and 3.\nShow work.\nOutput:[[ 2 + 3 = 5.\n\n5]][[<|endoftext|>]]")
        XCTAssertEqual(try render(#"{"instruction": "Hi", "output": "Hello"}"#).annotated, "Instruct: Hi\nOutput:[[ Hello]][[<|endoftext|>]]")
        XCTAssertEqual(try render(#"{"prompt": "日本の首都は？", "completion": "東京"}"#).annotated, "Instruct: 日本の首都は？\nOutput:[[ 東京]][[<|endoftext|>]]")
        XCTAssertEqual(try render(#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A?"}, {"role": "assistant", "content": "B."}, {"role": "user", "content": "C?"}, {"role": "assistant", "content": "D."}]}"#).annotated,
                       "Be brief.\nInstruct: A?\nOutput:[[ B.]]\nInstruct: C?\nOutput:[[ D.]][[<|endoftext|>]]")
        XCTAssertEqual(try render(#"{"text": "你好"}"#).annotated, "[[你好]][[<|endoftext|>]]")
    }

    func testMaskingAndTruncation() throws {
        let tok = try Self.tokenizer()
        let e = TrainingExample(pieces: [("Instruct: Hi\nOutput:", false), (" Hello there, friend", true)])
        let masked = TokenizedExample(e, tokenizer: tok, maxTokens: 512)
        let all = TokenizedExample(e, tokenizer: tok, maxTokens: 512, maskPrompt: false)
        XCTAssertEqual(masked.tokens, all.tokens)
        XCTAssertEqual(masked.tokens.last, tok.eosID)
        XCTAssertEqual(masked.targetCount, 5)                    // " Hello", " there", ",", " friend", eos
        XCTAssertEqual(all.targetCount, all.tokens.count - 1)    // every token but the first
        let cut = TokenizedExample(e, tokenizer: tok, maxTokens: 8)
        XCTAssertTrue(cut.truncated)
        XCTAssertEqual(cut.tokens, Array(masked.tokens.prefix(8)))
    }

    func testBadLinesNameFileAndLine() throws {
        let tok = try Self.tokenizer()
        let cases: [(String, String)] = [
            (#"{"instruction": "x""#, "not valid JSON"),
            (#"[1, 2]"#, "expected a JSON object"),
            (#"{"instruction": "x"}"#, "needs a \"response\""),
            (#"{"instruction": 3, "response": "y"}"#, "\"instruction\" must be a string"),
            (#"{"messages": [{"role": "user", "content": "x"}]}"#, "no assistant message"),
            (#"{"messages": [{"role": "bot", "content": "x"}]}"#, "role \"bot\""),
            (#"{"question": "x"}"#, "no known fields (found: question)"),
        ]
        for (line, reason) in cases {
            let p = write([#"{"text": "fine"}"#, "", line], "bad.jsonl")
            XCTAssertThrowsError(try Dataset(path: p, tokenizer: tok, maxTokens: 64)) { e in
                XCTAssertTrue("\(e)".hasPrefix(p + ":3: "), "\(e)")
                XCTAssertTrue("\(e)".contains(reason), "\(e) should say \(reason)")
            }
            let d = try Dataset(path: p, tokenizer: tok, maxTokens: 64, skipBad: true)
            XCTAssertEqual(d.badLines, 1)
            XCTAssertEqual(d.examples.count, 1)
        }
        XCTAssertThrowsError(try Dataset(path: write(["", " "], "empty.jsonl"), tokenizer: tok, maxTokens: 64)) {
            XCTAssertTrue("\($0)".contains("no usable examples"), "\($0)")
        }
    }
}
