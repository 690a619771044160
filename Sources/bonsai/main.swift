import Foundation
import Bonsai
import BonsaiFormats
let root = "/work/shared/fixtures/phi2-tiny"
let prompts = (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/prompts.json"))) as! [String: Any])["prompts"] as! [[String: Any]]
for (model, refs) in [("hf", ["hf_fp32"]), ("gguf/model-q8_0.gguf", ["hf_dequant_q8_0", "gguf_q8_0"]), ("gguf/model-q4_0.gguf", ["hf_dequant_q4_0", "gguf_q4_0"]), ("gguf/model-q4_K_M.gguf", ["hf_dequant_q4_K_M", "gguf_q4_K_M"])] {
    let t0 = Date()
    let lm = try ModelLoader.load(path: root + "/" + model)
    for ref in refs {
        let rf = try SafetensorsFile(path: root + "/refs/\(ref).safetensors")
        var worst: Float = 0
        for (i, p) in prompts.enumerated() {
            let ids = p["hf_ids"] as! [Int]
            let cache = KVCache(config: lm.model.config, nCtx: 512)
            let act = Phi2Activations(config: lm.model.config, maxTokens: 512, nCtx: 512, allLogits: false)
            try lm.model.forward(ids, cache: cache, act: act)
            let r = rf.floats("p\(i).last_logits")!
            let d = zip(act.logits.array, r).map { abs($0 - $1) }.max()!
            worst = max(worst, d)
        }
        print(model, "vs", ref, "max abs", worst, Date().timeIntervalSince(t0))
    }
}
