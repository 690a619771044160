import BonsaiFormats
import Foundation
import XCTest

/// The reference fixtures in ../shared/fixtures (relative to the repository root).
/// Outside CI a missing fixture folder skips the test with a message; in CI (CI=true) it fails loudly.
public enum Fixtures {
    public static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)   // <repo>/Tests/TestSupport/Fixtures.swift
        for _ in 0 ..< 3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static let phi2Tiny: String = {
        let env = ProcessInfo.processInfo.environment["BONSAI_FIXTURES"]
        return env ?? URL(fileURLWithPath: repoRoot).deletingLastPathComponent()
            .appendingPathComponent("shared/fixtures/phi2-tiny").path
    }()

    /// Path of a fixture file; throws XCTSkip (or fails in CI) when the fixtures are absent.
    public static func path(_ relative: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = phi2Tiny + "/" + relative
        if FileManager.default.fileExists(atPath: p) { return p }
        let message = "fixture \(p) is missing (expected ../shared/fixtures/phi2-tiny next to the repository)"
        if ProcessInfo.processInfo.environment["CI"] != nil {
            XCTFail(message, file: file, line: line)
            throw FixtureMissing(message: message)
        }
        throw XCTSkip(message)
    }

    public static func json(_ relative: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: try path(relative)))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// prompts.json: (name, text, hf_ids)
    public static func prompts() throws -> [(name: String, text: String, ids: [Int])] {
        let list = try XCTUnwrap(json("prompts.json")["prompts"] as? [[String: Any]])
        return list.map { ($0["name"] as! String, $0["text"] as! String, $0["hf_ids"] as! [Int]) }
    }

    /// refs/<key>.json and refs/<key>.safetensors
    public static func reference(_ key: String) throws -> Reference {
        Reference(meta: try json("refs/\(key).json"), tensors: try SafetensorsFile(path: try path("refs/\(key).safetensors")))
    }

    /// A path in this test process's scratch directory, which is removed when the process exits: the
    /// quantized and exported models come to about 1 GB a run, and 127 runs left behind filled the disk.
    public static func temporaryPath(_ name: String) -> String {
        scratchDirectory.appendingPathComponent(name).path
    }

    private static let scratchDirectory: URL = {
        try? FileManager.default.createDirectory(at: scratchURL(), withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: Fixtures.scratchURL()) }   // a C callback: no captures
        return scratchURL()
    }()

    private static func scratchURL() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-tests-\(getpid())")
    }
}

public struct FixtureMissing: Error { public let message: String }

/// One model's reference outputs.
public struct Reference {
    public let meta: [String: Any]
    public let tensors: SafetensorsFile

    var promptsMeta: [[String: Any]] { meta["prompts"] as! [[String: Any]] }
    public func lastLogits(_ i: Int) -> [Float]? { tensors.floats("p\(i).last_logits") }
    public func logsumexp(_ i: Int) -> [Float]? { tensors.floats("p\(i).logsumexp") }
    public func argmax(_ i: Int) -> [Int] { promptsMeta[i]["argmax_per_position"] as! [Int] }
    public func greedy(_ i: Int) -> [Int] { promptsMeta[i]["greedy_ids"] as! [Int] }
}

public func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
