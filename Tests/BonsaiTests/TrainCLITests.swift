import Bonsai
import Foundation
import TestSupport
import XCTest

/// The README's path from a JSONL file to a merged GGUF, through the `bonsai` executable.
extension CLITests {
    func makeData() throws -> String {
        let dir = Fixtures.temporaryPath("cli-data")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let train = [
            #"{"instruction": "What is 12 times 7?", "reasoning": "12 × 7 = 70 + 14.", "response": "84"}"#,
            #"{"instruction": "Translate 'good morning' into French.", "response": "Bonjour."}"#,
            #"{"prompt": "日本の首都はどこですか？", "completion": "東京です。"}"#,
            #"{"messages": [{"role": "user", "content": "中国的首都是哪里？"}, {"role": "assistant", "content": "北京。"}]}"#,
        ]
        try train.joined(separator: "\n").write(toFile: dir + "/train.jsonl", atomically: true, encoding: .utf8)
        try train.prefix(2).joined(separator: "\n").write(toFile: dir + "/valid.jsonl", atomically: true, encoding: .utf8)
        return dir
    }

    func testTrainChatExportEvalFromJSONL() throws {
        let base = try Fixtures.path("gguf/model-q8_0.gguf"), data = try makeData()
        let out = Fixtures.temporaryPath("cli-adapter")
        try? FileManager.default.removeItem(atPath: out)
        let config = Fixtures.temporaryPath("train.yaml")
        try """
        # a config file holds the same keys as the flags
        model: \(base)
        data: \(data)
        rank: 4
        alpha: 8
        targets: [q_proj, v_proj, fc2]
        learning-rate: 1e-2
        batch_size: 2
        iters: 6
        steps_per_eval: 3
        save_every: 3
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let t = try bonsai(["train", "--config", config, "--adapter-path", out, "--seed", "3"])
        XCTAssertEqual(t.status, 0, t.stderr)
        for f in ["adapter_config.json", "adapter_model.safetensors", "adapter.gguf", "metrics.jsonl", "checkpoints/step-0000006/optimizer.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f)
        }
        let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(metrics.filter { $0.contains("\"loss\"") }.count, 6)
        XCTAssertEqual(metrics.filter { $0.contains("\"val_loss\"") }.count, 2)
        let cfg = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/adapter_config.json"))) as? [String: Any])
        XCTAssertEqual(cfg["r"] as? Int, 4)
        XCTAssertEqual(cfg["target_modules"] as? [String], ["fc2", "q_proj", "v_proj"])

        // the adapter moved the answers' loss down, by either format
        for adapter in [out, out + "/adapter.gguf"] {
            let e = try bonsai(["eval", "-m", base, "--lora", adapter, "--data", data + "/train.jsonl", "--f32-math"])
            XCTAssertEqual(e.status, 0, e.stderr)
            let losses = e.stdout.split(separator: "\n").compactMap { line in
                line.split(separator: " ").firstIndex(of: "loss").map { Double(line.split(separator: " ")[$0 + 1].dropLast())! }
            }
            XCTAssertEqual(losses.count, 2, e.stdout)
            XCTAssertLessThan(losses[0], losses[1], "adapted < base: \(e.stdout)")
        }
        // runtime adapter and merged model answer alike; chat takes --lora too
        let merged = Fixtures.temporaryPath("cli-merged.gguf")
        let x = try bonsai(["export", "-m", base, "--lora", out, "--out", merged])
        XCTAssertEqual(x.status, 0, x.stderr)
        let prompt = ["-p", "Instruct: What is 12 times 7?\\nOutput:", "--temp", "0", "-n", "6", "--f32-math"]
        let g1 = try bonsai(["generate", "-m", base, "--lora", out] + prompt), g2 = try bonsai(["generate", "-m", merged] + prompt)
        XCTAssertEqual(g1.status, 0, g1.stderr)
        XCTAssertEqual(g2.status, 0, g2.stderr)
        let c = try bonsai(["chat", "-m", base, "--lora", out, "--temp", "0", "-n", "4"], stdin: "Hello\n/exit\n")
        XCTAssertEqual(c.status, 0, c.stderr)
        // an HF fp16 base quantized to q4_0 while loading trains too
        let q = try bonsai(["train", "-m", try Fixtures.path("hf"), "--quantize", "q4_0", "--data", data, "--iters", "2",
                            "--adapter-path", out + "-q4", "--batch-size", "2"])
        XCTAssertEqual(q.status, 0, q.stderr)
        XCTAssertTrue(q.stderr.contains("q4_0"), q.stderr)
        let show = try bonsai(["train", "--config", config, "--show-example"])
        XCTAssertTrue(show.stdout.contains("Instruct: What is 12 times 7?\nOutput:[[ 12 × 7 = 70 + 14.\n\n84<|endoftext|>]]"), show.stdout)
    }

    func testTrainRejectsBadInputWithOneLine() throws {
        let base = try Fixtures.path("gguf/model-q8_0.gguf"), data = try makeData()
        let badData = Fixtures.temporaryPath("cli-bad.jsonl")
        try "{\"text\": \"ok\"}\n{\"instruction\": \"x\"}\n".write(toFile: badData, atomically: true, encoding: .utf8)
        let badYAML = Fixtures.temporaryPath("bad.yaml")
        try "rank: 4\nlearning_rat: 1e-3\n".write(toFile: badYAML, atomically: true, encoding: .utf8)
        let out = Fixtures.temporaryPath("cli-bad-adapter")
        let cases: [([String], String)] = [
            (["train", "-m", base, "--data", badData, "--adapter-path", out], badData + ":2:"),
            (["train", "-m", base, "--data", data, "--rank", "0"], "--rank"),
            (["train", "-m", base, "--data", data, "--targets", "q_proj,wq"], "wq"),
            (["train", "-m", base, "--data", data, "--config", badYAML], "learning_rat"),
            (["train", "-m", base, "--data", data, "--adapter-path", out + "-none", "--resume"], "no checkpoint"),
            (["train", "-m", "/no/such/model.gguf", "--data", data], "/no/such/model.gguf"),
            (["export", "-m", base, "--lora", "/no/such/adapter", "--out", out + ".gguf"], "/no/such/adapter"),
            (["generate", "-m", base, "--lora", base, "-p", "x"], "not a LoRA adapter"),
        ]
        for (args, needle) in cases {
            let r = try bonsai(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(needle), "\(args): \(r.stderr)")
        }
    }

    /// Ctrl-C during training writes a checkpoint and exits; --resume picks it up.
    func testCtrlCWritesACheckpointAndResumeContinues() throws {
        let base = try Fixtures.path("gguf/model-q8_0.gguf"), data = try makeData()
        let out = Fixtures.temporaryPath("cli-interrupt")
        try? FileManager.default.removeItem(atPath: out)
        let p = Process()
        p.executableURL = try executable()
        p.arguments = ["train", "-m", base, "--data", data, "--adapter-path", out, "--iters", "100000", "--save-every", "0",
                       "--steps-per-eval", "0"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        // wait until a few steps are logged, then interrupt
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let n = (try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0
            if n >= 3 { break }
            usleep(50_000)
        }
        p.interrupt()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130, stderr)
        XCTAssertTrue(stderr.contains("--resume"), stderr)
        let step = (try? FileManager.default.contentsOfDirectory(atPath: out + "/checkpoints"))?.compactMap { Int($0.dropFirst(5)) }.max() ?? 0
        XCTAssertGreaterThanOrEqual(step, 3)
        // an older checkpoint can be named explicitly; a folder that is not one is a one-line error
        let bad = try bonsai(["train", "-m", base, "--data", data, "--adapter-path", out, "--resume-from", data])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        let r = try bonsai(["train", "-m", base, "--data", data, "--adapter-path", out, "--iters", "\(step + 2)", "--resume"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("resumed from"), r.stderr)
        let steps = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .filter { $0.contains("\"loss\"") }
            .compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }.compactMap { $0["step"] as? Int }
        XCTAssertEqual(steps, Array(1 ... step + 2), "one line per step, the interrupted tail dropped")
    }
}
