/// What went wrong reading or writing a model file. Every case names the file, so a one-line
/// message is enough for the user to act on.
public enum FormatError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened, mapped or written.
    case io(path: String, reason: String)
    /// The bytes do not form a valid file of the expected kind (truncated, bad magic, absurd sizes...).
    case malformed(path: String, reason: String)
    /// A valid file that asks for something Bonsai does not do (a tensor type, an architecture...).
    case unsupported(path: String, reason: String)

    public var description: String {
        switch self {
        case let .io(path, reason): return "\(path): \(reason)"
        case let .malformed(path, reason): return "\(path): malformed file: \(reason)"
        case let .unsupported(path, reason): return "\(path): unsupported: \(reason)"
        }
    }
}
