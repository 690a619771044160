import BonsaiFormats
import Foundation

/// metrics.jsonl in the adapter folder: one JSON object per line ({"step", "loss", "lr", ...} after each
/// step, {"step", "val_loss"} after each validation). On resume, lines past the resumed step are dropped
/// first, so the log reads as one run.
public final class MetricsLog {
    public let path: String
    private let handle: FileHandle

    public init(path: String, keepThrough step: Int) throws {
        self.path = path
        let fm = FileManager.default
        var kept = ""
        if step > 0, let data = fm.contents(atPath: path), let text = String(data: data, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                      let s = o["step"] as? Int, s <= step else { continue }
                kept += line + "\n"
            }
        }
        let out = try AtomicFileWriter(path: path)
        try out.write([UInt8](kept.utf8))
        try out.commit()
        guard let h = FileHandle(forWritingAtPath: path) else { throw TrainError.option("cannot write \(path)") }
        h.seekToEndOfFile()
        handle = h
    }

    public func append(_ fields: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else { return }
        handle.write(data + Data("\n".utf8))
    }

    deinit { try? handle.close() }
}
