import Foundation

/// A status line on standard error that rewrites itself on a terminal (\r) and prints one line per update
/// otherwise (logs, pipes), so a redirected log stays readable.
final class ProgressLine {
    private let tty = isatty(2) != 0
    private var open = false

    func show(_ s: String) {
        if tty {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + s).utf8))
            open = true
        } else {
            FileHandle.standardError.write(Data((s + "\n").utf8))
        }
    }

    /// A line that stays (validation results, checkpoints), printed below the status line.
    func finish(_ s: String) {
        FileHandle.standardError.write(Data(((tty && open ? "\n" : "") + s + "\n").utf8))
        open = false
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}
