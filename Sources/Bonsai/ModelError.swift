import BonsaiFormats

/// Errors of the runtime, phrased for the person at the terminal.
public enum ModelError: OneLineError {
    case wrongArchitecture(path: String, found: String)
    case missingTensor(path: String, name: String)
    case badTensor(path: String, name: String, reason: String)
    case badConfig(path: String, reason: String)
    case contextFull(nCtx: Int)
    case invalidOption(String)

    public var message: String {
        switch self {
        case let .wrongArchitecture(path, found):
            return "\(path): architecture is \(found), but Bonsai runs phi2 (PHI-2) models only"
        case let .missingTensor(path, name): return "\(path): tensor \(name) is missing"
        case let .badTensor(path, name, reason): return "\(path): tensor \(name): \(reason)"
        case let .badConfig(path, reason): return "\(path): \(reason)"
        case let .contextFull(n): return "the context is full (\(n) tokens); raise --ctx-size or start over"
        case let .invalidOption(s): return s
        }
    }
}
