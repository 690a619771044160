#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CBonsai

/// Reads lines from standard input with read(2), so that Ctrl-C at the prompt (EINTR, with the
/// interrupt flag set) ends the chat instead of leaving the stdlib's readLine spinning on a stream error.
struct LineReader {
    private var buffer: [UInt8] = []
    private var eof = false

    /// The next line without its newline; nil at end of input or when Ctrl-C was pressed.
    mutating func next() -> String? {
        while true {
            if let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
            if eof {
                guard !buffer.isEmpty else { return nil }
                defer { buffer.removeAll() }
                return String(decoding: buffer, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n > 0 {
                buffer += chunk[..<n]
            } else if n == 0 {
                eof = true
            } else if errno == EINTR && !bonsai_interrupt_pending() {
                continue
            } else {
                return nil
            }
        }
    }
}
