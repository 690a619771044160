import BonsaiFormats
import BonsaiTokenizer
import CBonsai

/// A PHI-2-shaped GGUF with random weights, for benchmarks without a download. The tokenizer is a
/// synthetic byte-level BPE (256 byte tokens, then two-byte merges, <|endoftext|> at 50256 when the
/// vocabulary is large enough) so that llama.cpp and Bonsai both load the file.
public enum Synth {
    public static func write(config c: Phi2Config, scheme: QuantScheme, to path: String, seed: UInt64 = 1,
                             progress: ((Int, Int) -> Void)? = nil) throws {
        let tokenizer = try syntheticTokenizer(vocab: c.vocab_size)
        var w = GGUFWriter()
        w.metadata = GGUFExport.metadata(config: c, tokenizer: tokenizer, name: "phi2-synth", fileType: scheme.fileType)
        let d = c.hidden_size, ff = c.intermediate_size
        func add(_ name: String, _ ne: [Int], layer: Int?, std: Float, mean: Float = 0) {
            let type = QuantScheme.fitting(scheme.type(forTensor: name, layer: layer, layers: c.num_hidden_layers, isMatrix: ne.count == 2),
                                           cols: ne[0])
            let salt = UInt64(w.tensors.count + 1) &* 0x9E37_79B9
            w.tensors.append(.init(name: name, type: type, ne: ne) { sink in
                try randomTensor(type: type, ne: ne, std: std, mean: mean, seed: seed ^ salt, to: sink)
            })
        }
        add("token_embd.weight", [d, c.vocab_size], layer: nil, std: 0.5)
        for l in 0 ..< c.num_hidden_layers {
            let p = "blk.\(l)."
            add(p + "attn_norm.weight", [d], layer: l, std: 0.05, mean: 1)
            add(p + "attn_norm.bias", [d], layer: l, std: 0.05)
            for n in ["attn_q", "attn_k", "attn_v", "attn_output"] {
                add(p + n + ".weight", [d, d], layer: l, std: 0.02)
                add(p + n + ".bias", [d], layer: l, std: 0.02)
            }
            add(p + "ffn_up.weight", [d, ff], layer: l, std: 0.02)
            add(p + "ffn_up.bias", [ff], layer: l, std: 0.02)
            add(p + "ffn_down.weight", [ff, d], layer: l, std: 0.02)
            add(p + "ffn_down.bias", [d], layer: l, std: 0.02)
        }
        add("output_norm.weight", [d], layer: nil, std: 0.05, mean: 1)
        add("output_norm.bias", [d], layer: nil, std: 0.05)
        add("output.weight", [d, c.vocab_size], layer: nil, std: 0.05)
        add("output.bias", [c.vocab_size], layer: nil, std: 0.02)
        try w.write(to: path, progress: progress)
    }

    /// Uniform values of the given mean and standard deviation, quantized with our quantizers (rows in
    /// parallel; every type a scheme names has one).
    static func randomTensor(type: TensorType, ne: [Int], std: Float, mean: Float, seed: UInt64,
                             to sink: AtomicFileWriter) throws {
        var rng = SplitMix64(seed: seed)
        let cols = ne[0], rows = ne.count > 1 ? ne[1] : 1
        let rowBytes = type.byteCount(elements: cols)!
        let chunk = max(1, min(rows, (4 << 20) / cols))
        var dense = [Float](repeating: 0, count: chunk * cols)
        var out = [UInt8](repeating: 0, count: chunk * rowBytes)
        let half = std * 1.7320508   // uniform on [-a, a] has std a / sqrt(3)
        var r = 0
        while r < rows {
            let n = min(chunk, rows - r)
            for i in 0 ..< n * cols { dense[i] = mean + half * (Float(rng.next() >> 40) / Float(1 << 23) - 1) }
            guard bonsai_convert_rows(Int32(TensorType.f32.rawValue), dense, cols * 4, Int32(type.rawValue), &out,
                                      Int64(n), Int64(cols)) else {
                throw ModelError.invalidOption("cannot write \(type)")
            }
            try out.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0 ..< n * rowBytes])) }
            r += n
        }
    }

    static func syntheticTokenizer(vocab: Int) throws -> Tokenizer {
        let bytes = (0 ..< 256).map { String(ByteLevelMap.scalar(UInt8($0))) }   // one token per byte
        var tokens = bytes, merges: [(String, String)] = []
        let eos = vocab > 50256 ? 50256 : vocab - 1
        outer: for a in bytes {
            for b in bytes {
                if tokens.count >= eos { break outer }
                merges.append((a, b))
                tokens.append(a + b)
            }
        }
        var kinds = [Tokenizer.TokenKind](repeating: .normal, count: tokens.count)
        tokens.append("<|endoftext|>")
        kinds.append(.control)
        return try Tokenizer(tokens: tokens, kinds: kinds, merges: merges, eosID: eos, bosID: eos)
    }
}
