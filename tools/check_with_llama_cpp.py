"""Check a GGUF written or run by Bonsai against llama.cpp itself (llama-cpp-python).

    benchmarks/.venv/bin/python tools/check_with_llama_cpp.py model.gguf [--bonsai .build/release/bonsai]
                                                              [--ppl text.txt [--ctx 256]]

Loads the file in llama.cpp (so a file llama.cpp refuses fails here), compares the token ids of a few
prompts with `bonsai tokenize`, and prints both engines' 16-token greedy continuations side by side with
the length of their common prefix. On random-weight models near-ties make continuations split after a
few tokens; on real weights they agree much longer. With --ppl, both engines' perplexity of a text the
way llama-perplexity computes it (chunks of --ctx tokens from an empty cache, each scored on its second
half): a number that moves with every logit, so it shows a wrong shape (head size, rotary dims) or type
where random-weight continuations cannot.
"""
import argparse, json, re, subprocess, sys
import numpy as np
from llama_cpp import Llama

PROMPTS = ["Instruct: Write a haiku about autumn.\nOutput:", "def fibonacci(n):\n    ", "東京は日本の首都です。"]


def llama_perplexity(model, text_path, n_ctx):
    """llama-perplexity's number: per chunk, -log p of tokens n_ctx/2 + 1 .. n_ctx - 1 given what precedes."""
    llm = Llama(model_path=model, n_ctx=n_ctx, n_batch=n_ctx, n_threads=2, logits_all=True, verbose=False)
    toks = llm.tokenize(open(text_path, "rb").read(), add_bos=False)
    nll, count = 0.0, 0
    for c in range(len(toks) // n_ctx):
        chunk = toks[c * n_ctx:(c + 1) * n_ctx]
        llm.reset()
        llm.eval(chunk)
        logits = np.array(llm.scores[:n_ctx], dtype=np.float64)
        for j in range(n_ctx // 2, n_ctx - 1):
            row = logits[j]
            top = row.max()
            nll += top + np.log(np.exp(row - top).sum()) - row[chunk[j + 1]]
            count += 1
    return float(np.exp(nll / count)), count


def compare_perplexity(a):
    ours_out = subprocess.run([a.bonsai, "perplexity", "-m", a.model, "-f", a.ppl, "-c", str(a.ctx)],
                              capture_output=True, text=True)
    m = re.search(r"PPL = ([0-9.]+) \((\d+) tokens", ours_out.stdout + ours_out.stderr)
    if not m:
        print(f"bonsai perplexity failed: {ours_out.stderr.strip()}")
        return False
    ours, theirs = float(m.group(1)), llama_perplexity(a.model, a.ppl, a.ctx)
    diff = abs(ours - theirs[0]) / theirs[0]
    print(f"perplexity, --ctx {a.ctx}: llama.cpp {theirs[0]:.4f} ({theirs[1]} tokens), bonsai {ours:.4f} "
          f"({m.group(2)} tokens): {100 * diff:.3f}% apart")
    return int(m.group(2)) == theirs[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--bonsai", default=".build/release/bonsai")
    ap.add_argument("--ppl", help="a text file: compare both engines' perplexity of it")
    ap.add_argument("--ctx", type=int, default=256, help="tokens per perplexity chunk")
    a = ap.parse_args()
    if a.ppl:
        sys.exit(0 if compare_perplexity(a) else 1)
    llm = Llama(model_path=a.model, n_ctx=512, n_threads=2, logits_all=True, verbose=False)
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
