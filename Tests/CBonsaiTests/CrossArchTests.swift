import Foundation
import XCTest

/// The C target built for arm64 and run under qemu-user (tools/cross_check/run.sh): every type's quantizer
/// and dequantizer bit-identical to this machine's, and int8 dots, matmuls (both math modes) and attention
/// within the bounds these tests use. It found an x86-only guard missing around the AVX2 dequantizers (the
/// target did not compile for arm64) and q4_K/q6_K quantizers whose bytes changed where clang may fuse
/// a·b + c. The same script runs the VNNI kernels (q4_0/q8_0 dots, prompt kernels) on this AVX2-only machine through SIMDe's
/// dpbusd and requires their matmul outputs to equal the AVX2 kernels' bit for bit (an operand swap or a
/// dropped accumulator in the prompt kernels, an extra 1 in the q8_0 dot's sums, made it fail). Needs clang, gcc-aarch64-linux-gnu, qemu-user and libsimde-dev
/// (.ci/run installs them): missing in CI, the test fails; elsewhere it is skipped with a message.
final class CrossArchTests: XCTestCase {
    func testArm64AndVNNIBuildsAgreeWithThisMachine() throws {
        #if os(Linux) && arch(x86_64)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.appendingPathComponent("tools/cross_check/run.sh").path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 2 {   // a tool is missing
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(output) } else { throw XCTSkip(output) }
            return
        }
        XCTAssertEqual(process.terminationStatus, 0, output)
        #else
        throw XCTSkip("the cross check runs on x86-64 Linux hosts")
        #endif
    }
}
