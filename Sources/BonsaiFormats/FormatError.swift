/// An error whose description is one short line (FormatError.oneLine of its message), whatever a file put
/// into the names and reasons it quotes. Bonsai's error types all are.
public protocol OneLineError: Error, CustomStringConvertible {
    /// The text before it is made one line.
    var message: String { get }
}

extension OneLineError {
    public var description: String { FormatError.oneLine(message) }
}

/// What went wrong reading or writing a model file. Every case names the file, so a one-line
/// message is enough for the user to act on.
public enum FormatError: OneLineError, Equatable {
    /// The file could not be opened, mapped or written.
    case io(path: String, reason: String)
    /// The bytes do not form a valid file of the expected kind (truncated, bad magic, absurd sizes...).
    case malformed(path: String, reason: String)
    /// A valid file that asks for something Bonsai does not do (a tensor type, an architecture...).
    case unsupported(path: String, reason: String)

    public var message: String {
        switch self {
        case let .io(path, reason): return "\(path): \(reason)"
        case let .malformed(path, reason): return "\(path): malformed file: \(reason)"
        case let .unsupported(path, reason): return "\(path): unsupported: \(reason)"
        }
    }

    /// `message` as one short line. Names and keys read from a damaged file can hold any bytes, newlines
    /// included, and run for kilobytes: control and line-breaking characters are escaped ("\n", "\u{1}"),
    /// and a message past `limit` characters keeps its start and its end (what went wrong is often last).
    public static func oneLine(_ message: String, limit: Int = 400) -> String {
        var out = String.UnicodeScalarView()
        for c in message.unicodeScalars {
            switch c.properties.generalCategory {
            case .control, .lineSeparator, .paragraphSeparator: out.append(contentsOf: c.escaped(asASCII: true).unicodeScalars)
            default: out.append(c)
            }
        }
        guard out.count > limit else { return String(out) }
        let tail = limit / 4
        return String(out.prefix(limit - tail)) + " … " + String(out.suffix(tail))
    }
}
