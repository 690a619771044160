import Bonsai
import Foundation
import TestSupport
import XCTest

/// The `bonsai` executable as a user runs it (built next to the test bundle).
final class CLITests: XCTestCase {
    struct Run { let status: Int32; let stdout: String; let stderr: String }

    /// The built `bonsai` next to the test bundle.
    func executable() throws -> URL {
        let dir = Bundle.main.bundleURL.deletingLastPathComponent()
        var exe = dir.appendingPathComponent("bonsai")
        if !FileManager.default.fileExists(atPath: exe.path) {
            exe = Bundle.main.bundleURL.appendingPathComponent("bonsai")   // layout of other platforms
        }
        guard FileManager.default.isExecutableFile(atPath: exe.path) else { throw XCTSkip("bonsai executable not built at \(exe.path)") }
        return exe
    }

    func bonsai(_ args: [String], stdin: String? = nil) throws -> Run {
        let p = Process()
        p.executableURL = try executable()
        p.arguments = args
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let s = stdin { inp.fileHandleForWriting.write(Data(s.utf8)) }
        try inp.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func testGenerateGreedyPrintsTheReferenceContinuation() throws {
        let model = try Fixtures.path("gguf/model-q4_0.gguf")
        let p = try Fixtures.prompts()[2]   // code prompt: the reference's 32 greedy tokens are all real tokens
        let ref = try Fixtures.reference("hf_dequant_q4_0").greedy(2)
        XCTAssertTrue(ref.allSatisfy { $0 < 50295 })
        let r = try bonsai(["generate", "-m", model, "--temp", "0", "-n", "32", "--no-escape", "--f32-math", "-p", p.text])
        XCTAssertEqual(r.status, 0, r.stderr)
        let tok = try Models.load("q4_0").tokenizer
        XCTAssertEqual(r.stdout, tok.decode(ref) + "\n")
        XCTAssertTrue(r.stderr.contains("t/s"), r.stderr)
    }

    func testTokenizePrintsIDs() throws {
        let r = try bonsai(["tokenize", "-m", try Fixtures.path("hf"), "-p", "Hello world"])
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.stdout, "[15496, 995]\n")
    }

    /// Two identical questions with /reset between give identical greedy answers; without it the second
    /// answer continues the conversation (different context, different answer), and /exit ends cleanly.
    func testChatKeepsHistoryAndResets() throws {
        let model = try Fixtures.path("gguf/model-q8_0.gguf")
        let r = try bonsai(["chat", "-m", model, "--temp", "0", "-n", "12"],
                           stdin: "/help\nWhat is the ocean?\n/reset\nWhat is the ocean?\nWhat is the ocean?\n/exit\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        let answers = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
        XCTAssertEqual(answers.count, 3, r.stdout)
        XCTAssertEqual(answers[0], answers[1], "after /reset the same question gets the same answer")
        XCTAssertTrue(r.stderr.contains("/reset"), "help was printed")
        XCTAssertTrue(r.stderr.contains("(conversation cleared)"))
        XCTAssertEqual(r.stderr.components(separatedBy: "t/s").count - 1, 3, "a speed line per answer")
    }

    func testBadInputGivesOneLineErrorAndNonZeroExit() throws {
        let bad = Fixtures.temporaryPath("not-a-model.gguf")
        try Data("this is not a gguf file at all".utf8).write(to: URL(fileURLWithPath: bad))
        for args in [["generate", "-m", bad, "-p", "x"], ["generate", "-m", "/no/such/file", "-p", "x"],
                     ["info", "-m", bad], ["chat", "-m", bad]] {
            let r = try bonsai(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("bonsai: error:"), r.stderr)
        }
        let model = try Fixtures.path("gguf/model-q4_0.gguf")
        for args in [["generate", "-m", model, "-p", "x", "--temp", "-1"], ["generate", "-m", model, "-p", "x", "--top-p", "0"],
                     ["generate", "-m", model, "-p", "x", "--ctx-size", "0"], ["generate", "-m", model, "-p", "x", "--quantize", "q9"],
                     ["perplexity", "-m", model, "-f", "/no/such/text.txt"]] {
            let r = try bonsai(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertFalse(r.stderr.isEmpty)
        }
    }

    /// `bonsai synth` with only the sizes the issue names: the heads follow PHI-2's head size of 80 and
    /// the rotary dims its 0.4 fraction, the file loads and generates, and impossible options are one
    /// error line with no file left behind.
    func testSynthWritesASmallPhi2ThatLoadsAndRuns() throws {
        let out = Fixtures.temporaryPath("synth-tiny.gguf")
        let r = try bonsai(["synth", "--type", "q8_0", "--layers", "2", "--hidden", "160", "--ff", "640", "--vocab", "1000", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let m = try ModelLoader.load(path: out)
        let c = m.model.config
        XCTAssertEqual([c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.vocab_size], [2, 160, 640, 1000])
        XCTAssertEqual([c.num_attention_heads, c.head_dim, c.rotary_dim], [2, 80, 32])
        XCTAssertEqual(m.gguf?["general.file_type"]?.int, 7)   // LLAMA_FTYPE_MOSTLY_Q8_0
        XCTAssertEqual(m.model.layers[1].fc2.type, .q8_0)
        let g = try bonsai(["generate", "-m", out, "--temp", "0", "-n", "4", "-p", "hello"])
        XCTAssertEqual(g.status, 0, g.stderr)

        // q4_0's output.weight is q6_K, whose 256-blocks do not fit 160 columns: q8_0, as llama-quantize
        let q4 = try bonsai(["synth", "--type", "q4_0", "--layers", "1", "--hidden", "160", "--ff", "640", "--vocab", "1000", out])
        XCTAssertEqual(q4.status, 0, q4.stderr)
        let m4 = try ModelLoader.load(path: out)
        XCTAssertEqual(m4.model.layers[0].fc1.type, .q4_0)
        XCTAssertEqual(m4.gguf?.tensor("output.weight")?.type, .q8_0)

        for (args, message) in [(["--heads", "3"], "multiple of --heads"), (["--rotary", "99"], "rotary dims 99"),
                                (["--type", "q4_K_M"], "multiples of 256")] {
            let bad = Fixtures.temporaryPath("synth-bad.gguf")
            let b = try bonsai(["synth", "--layers", "2", "--hidden", "160", "--ff", "640", "--vocab", "1000"] + args + [bad])
            XCTAssertNotEqual(b.status, 0, "\(args)")
            XCTAssertTrue(b.stderr.split(separator: "\n").first?.contains(message) ?? false, b.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: bad), "\(args)")
        }
    }
}
