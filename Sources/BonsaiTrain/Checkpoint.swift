import Bonsai
import BonsaiFormats
import Foundation

/// A training checkpoint: a folder <adapter-path>/checkpoints/step-NNNNNNN with the adapter in PEFT layout
/// (loadable as it is), the AdamW moments and the trainer's position. Written into a temporary folder and
/// renamed into place, so a checkpoint is either complete or absent.
public struct Checkpoint {
    public let step: Int
    public let path: String

    public static func folder(adapterPath: String) -> String { adapterPath + "/checkpoints" }

    init(step: Int, path: String) {
        self.step = step
        self.path = path
    }

    /// A checkpoint folder named by the user (its trainer_state.json says which step it holds).
    public init(path: String) throws {
        let p = path.hasSuffix("/") ? String(path.dropLast()) : path
        self.init(step: 0, path: p)
        guard let s = try state()["step"] as? Int, s >= 0 else { throw TrainError.checkpoint("\(p)/trainer_state.json has no step") }
        self.init(step: s, path: p)
    }

    static func name(step: Int) -> String { String(format: "step-%07d", step) }

    /// The newest complete checkpoint under an adapter folder, if any.
    public static func latest(adapterPath: String) -> Checkpoint? {
        let dir = folder(adapterPath: adapterPath)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { n -> Checkpoint? in
            guard n.hasPrefix("step-"), !n.contains("."), let s = Int(n.dropFirst(5)) else { return nil }
            return Checkpoint(step: s, path: dir + "/" + n)
        }.max { $0.step < $1.step }
    }

    /// Writes the state after `step` optimizer steps.
    static func write(adapter: LoRAAdapter, optimizer: AdamW, step: Int, state: [String: Any],
                      adapterPath: String, baseModel: String, dropout: Float) throws -> Checkpoint {
        let fm = FileManager.default
        let dir = folder(adapterPath: adapterPath)
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let final = dir + "/" + name(step: step)
        let tmp = final + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: tmp)
        try AdapterWriter.writePEFT(adapter, to: tmp, baseModel: baseModel, dropout: dropout)
        var st = SafetensorsWriter()
        let s = optimizer.state
        for (i, (m, v)) in zip(s.m, s.v).enumerated() {
            st.add("m.\(i)", shape: [m.count], floats: m.array)
            st.add("v.\(i)", shape: [v.count], floats: v.array)
        }
        try st.write(to: tmp + "/optimizer.safetensors")
        var full = state
        full["step"] = step
        full["optimizer_step"] = s.step
        let json = try JSONSerialization.data(withJSONObject: full, options: [.prettyPrinted, .sortedKeys])
        let out = try AtomicFileWriter(path: tmp + "/trainer_state.json")
        try out.write([UInt8](json))
        try out.commit()
        if fm.fileExists(atPath: final) { try fm.removeItem(atPath: final) }
        try fm.moveItem(atPath: tmp, toPath: final)
        return Checkpoint(step: step, path: final)
    }

    /// The trainer state JSON of this checkpoint.
    func state() throws -> [String: Any] {
        let p = path + "/trainer_state.json"
        guard let d = FileManager.default.contents(atPath: p),
              let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
            throw TrainError.checkpoint("\(p) is missing or not JSON")
        }
        return o
    }

    /// Restores the adapter's weights and the optimizer's moments (shapes must match).
    func restore(into adapter: LoRAAdapter, optimizer: AdamW, config c: Phi2Config) throws {
        let saved = try LoRAAdapter.load(path: path, config: c)
        for (l, layer) in adapter.pairs.enumerated() {
            for (t, p) in layer {
                guard let q = saved.pairs[l][t], q.A.count == p.A.count, q.B.count == p.B.count else {
                    throw TrainError.checkpoint("\(path) has no matching \(t.rawValue) pair for layer \(l)")
                }
                p.A.pointer.update(from: q.A.pointer, count: p.A.count)
                p.B.pointer.update(from: q.B.pointer, count: p.B.count)
            }
        }
        let st = try SafetensorsFile(path: path + "/optimizer.safetensors")
        let n = optimizer.state.m.count
        var m: [[Float]] = [], v: [[Float]] = []
        for i in 0 ..< n {
            guard let mi = st.floats("m.\(i)"), let vi = st.floats("v.\(i)") else {
                throw TrainError.checkpoint("\(path)/optimizer.safetensors lacks m.\(i) / v.\(i)")
            }
            m.append(mi)
            v.append(vi)
        }
        guard let step = try state()["optimizer_step"] as? Int else { throw TrainError.checkpoint("\(path): no optimizer_step") }
        try optimizer.restore(step: step, m: m, v: v)
    }
}
