"""Check Bonsai's LoRA outputs with the real tools.

    benchmarks/.venv/bin/python tools/check_adapter.py --base models/phi-2 --adapter adapters/ \
        [--gguf-base models/phi-2.f16.gguf] [--merged-hf models/phi-2-tuned] [--merged-gguf phi-2-tuned.gguf]

- PEFT: PeftModel.from_pretrained(HF base, adapter folder) loads our adapter_config.json and
  adapter_model.safetensors; its last-position logits are compared with `bonsai eval`-style logits
  (bonsai generate --temp 0 continuation vs PEFT's greedy continuation).
- llama.cpp: llama-cpp-python loads --gguf-base with adapter.gguf as its LoRA and answers greedily.
- A merged HF folder loads with transformers and matches PEFT's merge_and_unload(); a merged GGUF loads in
  llama.cpp and answers like the base + adapter.
Needs: pip install torch transformers peft llama-cpp-python (in an ignored venv, never for swift test).
"""
import argparse, os, subprocess, sys

PROMPT = "Instruct: What is the boiling point of water at sea level?\nOutput:"


def bonsai_greedy(bonsai, model, n, lora=None):
    cmd = [bonsai, "generate", "-m", model, "-p", PROMPT, "--no-escape", "--temp", "0", "-n", str(n), "--f32-math", "--quiet"]
    if lora: cmd += ["--lora", lora]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.rstrip("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bonsai", default=".build/release/bonsai")
    ap.add_argument("--base", required=True, help="HF folder of the base model")
    ap.add_argument("--adapter", required=True, help="adapter folder written by bonsai train")
    ap.add_argument("--gguf-base", help="GGUF of the same base, for llama.cpp with adapter.gguf")
    ap.add_argument("--merged-hf", help="HF folder written by bonsai export")
    ap.add_argument("--merged-gguf", help="GGUF written by bonsai export")
    ap.add_argument("-n", type=int, default=16)
    a = ap.parse_args()
    ok = True

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from peft import PeftModel
    tok = AutoTokenizer.from_pretrained(a.base)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    base = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32)
    peft = PeftModel.from_pretrained(base, a.adapter).eval()
    with torch.no_grad():
        out = peft.generate(ids, max_new_tokens=a.n, do_sample=False)
        peft_logits = peft(ids).logits[0, -1]
    peft_text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    ours = bonsai_greedy(a.bonsai, a.base, a.n, a.adapter)
    same = peft_text == ours
    ok &= same
    print(f"PEFT loads the adapter; greedy {'equal' if same else 'DIFFERENT'}:\n  peft:   {peft_text!r}\n  bonsai: {ours!r}")

    if a.merged_hf:
        merged = AutoModelForCausalLM.from_pretrained(a.merged_hf, dtype=torch.float32).eval()
        with torch.no_grad():
            d = (merged(ids).logits[0, -1] - peft_logits).abs().max().item()
        print(f"transformers loads {a.merged_hf}; max |Δ last logits| vs PEFT unmerged: {d:.4g} (dtype rounding)")
        ok &= d < 0.05

    if a.gguf_base or a.merged_gguf:
        from llama_cpp import Llama
        def llama(path, lora=None):
            llm = Llama(model_path=path, lora_path=lora, n_ctx=256, verbose=False, seed=0)
            r = llm.create_completion(PROMPT, max_tokens=a.n, temperature=0.0)
            return r["choices"][0]["text"]
        if a.gguf_base:
            lc = llama(a.gguf_base, os.path.join(a.adapter, "adapter.gguf"))
            ours = bonsai_greedy(a.bonsai, a.gguf_base, a.n, os.path.join(a.adapter, "adapter.gguf"))
            print(f"llama.cpp applies adapter.gguf:\n  llama.cpp: {lc!r}\n  bonsai:    {ours!r}")
        if a.merged_gguf:
            lc = llama(a.merged_gguf)
            ours = bonsai_greedy(a.bonsai, a.merged_gguf, a.n)
            print(f"llama.cpp loads {a.merged_gguf}:\n  llama.cpp: {lc!r}\n  bonsai:    {ours!r}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
