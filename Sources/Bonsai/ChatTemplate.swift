/// How a chat turn is written for the model. PHI-2 was trained on "Instruct: …\nOutput:" (QA format),
/// "Alice: …\nBob:" (chat format) and plain text; it has no special chat tokens.
public enum ChatTemplate: String, CaseIterable, Sendable {
    case instruct
    case chat
    case raw

    /// Text for one user turn; `first` is true for the first turn of a conversation.
    public func turn(_ message: String, first: Bool) -> String {
        switch self {
        case .instruct: return (first ? "" : "\n") + "Instruct: \(message)\nOutput:"
        case .chat: return (first ? "" : "\n") + "Alice: \(message)\nBob:"
        case .raw: return message
        }
    }

    /// Where the model's answer ends if it starts writing the next turn itself.
    public var stopStrings: [String] {
        switch self {
        case .instruct: return ["\nInstruct:", "Instruct:"]
        case .chat: return ["\nAlice:", "Alice:"]
        case .raw: return []
        }
    }

    public var summary: String {
        switch self {
        case .instruct: return "Instruct: <message>\\nOutput: (PHI-2's QA format)"
        case .chat: return "Alice: <message>\\nBob: (PHI-2's chat format)"
        case .raw: return "your text as typed, continued by the model"
        }
    }
}
