// swift-tools-version: 6.2
//
// Bonsai: a Swift-native, GGUF-compatible PHI-2 engine with a LoRA trainer.
//
// OpenMP. The hot loops in CBonsai use OpenMP from LLVM's libomp (Debian: `apt-get install libomp-dev`).
// The Swift toolchain ships no omp.h and its linker driver rejects `-fopenmp`, so this manifest finds
// libomp itself: BONSAI_OPENMP_ROOT=<dir containing lib/libomp.so> (and optionally
// BONSAI_OPENMP_INCLUDE=<dir containing omp.h>) override the search; otherwise the newest
// /usr/lib/llvm-*/ with libomp.so is used, then /usr/local and Homebrew's libomp. When nothing is found,
// or BONSAI_OPENMP=0, CBonsai builds serially (same results, one thread).
import PackageDescription
import Foundation

struct OpenMP {
    let include: String
    let lib: String
}

func findOpenMP() -> OpenMP? {
    let env = ProcessInfo.processInfo.environment
    if env["BONSAI_OPENMP"] == "0" { return nil }
    let fm = FileManager.default
    func ompHeader(under root: String) -> String? {
        if fm.fileExists(atPath: root + "/include/omp.h") { return root + "/include" }
        // Debian: /usr/lib/llvm-N/lib/clang/<version>/include/omp.h
        let clangDir = root + "/lib/clang"
        for v in ((try? fm.contentsOfDirectory(atPath: clangDir)) ?? []).sorted().reversed() {
            let dir = clangDir + "/" + v + "/include"
            if fm.fileExists(atPath: dir + "/omp.h") { return dir }
        }
        return nil
    }
    func candidate(_ root: String) -> OpenMP? {
        let libDir = root + "/lib"
        guard fm.fileExists(atPath: libDir + "/libomp.so") || fm.fileExists(atPath: libDir + "/libomp.dylib")
        else { return nil }
        guard let inc = env["BONSAI_OPENMP_INCLUDE"] ?? ompHeader(under: root) else { return nil }
        return OpenMP(include: inc, lib: libDir)
    }
    if let root = env["BONSAI_OPENMP_ROOT"] { return candidate(root) }
    let llvmRoots = ((try? fm.contentsOfDirectory(atPath: "/usr/lib")) ?? [])
        .filter { $0.hasPrefix("llvm-") }
        .sorted { (Int($0.dropFirst(5)) ?? 0) > (Int($1.dropFirst(5)) ?? 0) }
        .map { "/usr/lib/" + $0 }
    for root in llvmRoots + ["/usr/local", "/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"] {
        if let found = candidate(root) { return found }
    }
    return nil
}

let openMP = findOpenMP()

var cSettings: [CSetting] = [.unsafeFlags(["-O3", "-ffp-contract=on", "-fno-math-errno"])]
var cLinker: [LinkerSetting] = [.linkedLibrary("m")]
if let omp = openMP {
    cSettings += [.define("BONSAI_OPENMP"), .unsafeFlags(["-fopenmp", "-I" + omp.include])]
    cLinker += [.linkedLibrary("omp"), .unsafeFlags(["-L" + omp.lib, "-Xlinker", "-rpath", "-Xlinker", omp.lib])]
}

let package = Package(
    name: "Bonsai",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "bonsai", targets: ["bonsai"]),
        .library(name: "Bonsai", targets: ["Bonsai"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The only place with SIMD and OpenMP: block formats, kernels, ops.
        .target(name: "CBonsai", cSettings: cSettings, linkerSettings: cLinker),
        // GGUF and safetensors, read and written; Hugging Face repo folders.
        .target(name: "BonsaiFormats", dependencies: ["CBonsai"]),
        // GPT-2 / CodeGen byte-level BPE.
        .target(name: "BonsaiTokenizer", dependencies: ["BonsaiFormats"]),
        // Runtime: weights, the PHI-2 model, KV cache, sampling, generation, chat.
        .target(name: "Bonsai", dependencies: ["CBonsai", "BonsaiFormats", "BonsaiTokenizer"]),
        // LoRA trainer: datasets, backward pass, AdamW, checkpoints, adapter writers, merge/export.
        .target(name: "BonsaiTrain", dependencies: ["CBonsai", "BonsaiFormats", "BonsaiTokenizer", "Bonsai"]),
        .executableTarget(name: "bonsai", dependencies: [
            "Bonsai", "BonsaiFormats", "BonsaiTokenizer", "BonsaiTrain",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Tests read the reference fixtures from ../shared/fixtures (see Tests/TestSupport).
        .target(name: "TestSupport", dependencies: ["BonsaiFormats"], path: "Tests/TestSupport"),
        .testTarget(name: "CBonsaiTests", dependencies: ["CBonsai", "Bonsai", "BonsaiFormats", "TestSupport"],
                    exclude: ["Vectors"]),   // dequant_vectors.safetensors, made by tools/make_dequant_vectors.py
        .testTarget(name: "BonsaiFormatsTests", dependencies: ["BonsaiFormats", "TestSupport"]),
        .testTarget(name: "BonsaiTokenizerTests", dependencies: ["BonsaiTokenizer", "TestSupport"]),
        .testTarget(name: "BonsaiTests", dependencies: ["Bonsai", "BonsaiFormats", "BonsaiTokenizer", "TestSupport"]),
        .testTarget(name: "BonsaiTrainTests", dependencies: ["BonsaiTrain", "Bonsai", "BonsaiFormats", "CBonsai", "TestSupport"]),
    ]
)
