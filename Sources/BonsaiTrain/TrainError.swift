import BonsaiFormats

/// Errors of the trainer, each naming what to fix.
public enum TrainError: OneLineError {
    case data(file: String, line: Int, reason: String)
    case noData(String)
    case option(String)
    case config(file: String, reason: String)
    case checkpoint(String)
    case interrupted

    public var message: String {
        switch self {
        case let .data(file, line, reason): return "\(file):\(line): \(reason)"
        case let .noData(s): return s
        case let .option(s): return s
        case let .config(file, reason): return "\(file): \(reason)"
        case let .checkpoint(s): return "checkpoint: \(s)"
        case .interrupted: return "interrupted"
        }
    }
}
