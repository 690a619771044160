"""Check a GGUF written or run by Bonsai against llama.cpp itself (llama-cpp-python).

    benchmarks/.venv/bin/python tools/check_with_llama_cpp.py model.gguf [--bonsai .build/release/bonsai]

Loads the file in llama.cpp (so a file llama.cpp refuses fails here), compares the token ids of a few
prompts with `bonsai tokenize`, and prints both engines' 16-token greedy continuations side by side with
the length of their common prefix. On random-weight models near-ties make continuations split after a
few tokens; on real weights they agree much longer.
"""
import argparse, json, subprocess, sys
from llama_cpp import Llama

PROMPTS = ["Instruct: Write a haiku about autumn.\nOutput:", "def fibonacci(n):\n    ", "東京は日本の首都です。"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--bonsai", default=".build/release/bonsai")
    a = ap.parse_args()
    llm = Llama(model_path=a.model, n_ctx=512, n_threads=2, verbose=False)
    ok = True
    for p in PROMPTS:
        ids = llm.tokenize(p.encode(), add_bos=False, special=True)
        ours = json.loads(subprocess.run([a.bonsai, "tokenize", "-m", a.model], input=p, capture_output=True, text=True).stdout)
        same = ids == ours
        ok &= same
        llm.reset()
        llm.eval(ids)
        greedy = []
        for _ in range(16):
            t = int(llm.scores[llm.n_tokens - 1].argmax())
            greedy.append(t)
            llm.eval([t])
        text = subprocess.run([a.bonsai, "generate", "-m", a.model, "--temp", "0", "-n", "16", "--quiet", "--no-escape", "-p", p],
                              capture_output=True, text=True).stdout.rstrip("\n")
        llama_text = llm.detokenize(greedy).decode(errors="replace")
        common = next((i for i, (x, y) in enumerate(zip(text, llama_text)) if x != y), min(len(text), len(llama_text)))
        print(f"prompt {p!r}: token ids {'equal' if same else 'DIFFER'}; greedy text common prefix {common} chars")
        print(f"  llama.cpp: {llama_text!r}\n  bonsai:    {text!r}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
