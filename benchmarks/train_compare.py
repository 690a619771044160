"""LoRA training tokens/s and peak RSS: Bonsai (Q4_0 base, int8 forward) vs PyTorch + PEFT (fp32), same shape.

Both train rank-8 adapters on q_proj, k_proj, v_proj, dense, fc1, fc2 of a PHI-2-shaped model (2560 hidden,
10240 ffn, 32 blocks, 51200 vocab) on batches of one 256-token sequence with AdamW; every token is a target.
Each engine runs in its own process (peak RSS is that process's maximum); the first step is a warm-up and
not timed.
"""
import argparse, json, os, platform, random, resource, subprocess, sys, tempfile, time

TORCH = r'''
import json, resource, sys, time, torch
from transformers import PhiConfig, PhiForCausalLM
from peft import LoraConfig, get_peft_model
threads, steps, seq = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = PhiConfig(vocab_size=51200, hidden_size=2560, intermediate_size=10240, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=32, partial_rotary_factor=0.4, hidden_act="gelu_new",
                layer_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=2048, resid_pdrop=0.0,
                embd_pdrop=0.0, attention_dropout=0.0)
with torch.device("meta"):
    model = PhiForCausalLM(cfg)
model = model.to_empty(device="cpu")
with torch.no_grad():
    for p in model.parameters(): p.normal_(0, 0.02)
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                       target_modules=["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]))
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
ids = torch.randint(0, 50000, (1, seq))
times = []
for step in range(steps + 1):
    t = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward(); opt.step(); opt.zero_grad()
    if step: times.append(time.perf_counter() - t)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"tokens_per_s": seq * len(times) / sum(times), "step_s": times, "peak_rss": rss,
                  "torch": torch.__version__}))
'''


def run_bonsai(bonsai, model, threads, steps, seq):
    """bonsai train on 256-token {"text"} examples; tokens/s from metrics.jsonl, excluding step 1."""
    d = tempfile.mkdtemp(prefix="bonsai-train-bench-")
    random.seed(1)
    words = "the of and to in is that for it as with was on be by this are or from at an which one".split()
    with open(os.path.join(d, "train.jsonl"), "w") as f:
        for _ in range(steps + 1):
            f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(4 * seq))}) + "\n")
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(r.returncode)")
    cmd = [sys.executable, "-c", wrapper, bonsai, "train", "--model", model, "--data", d, "--adapter-path", d + "/out",
           "--rank", "8", "--alpha", "16", "--batch-size", "1", "--max-seq-len", str(seq), "--iters", str(steps + 1),
           "--steps-per-eval", "0", "--save-every", "0", "--threads", str(threads), "--learning-rate", "1e-4"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("bonsai train failed:\n" + p.stderr)
    rss = int(p.stdout.strip().splitlines()[-1])
    rows = [json.loads(l) for l in open(d + "/out/metrics.jsonl") if '"loss"' in l]
    elapsed = [r["elapsed_s"] for r in rows]
    step_s = [b - a for a, b in zip(elapsed, elapsed[1:])]
    tokens = sum(r["tokens"] for r in rows[1:])
    return {"tokens_per_s": tokens / sum(step_s), "step_s": step_s, "peak_rss": rss}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bonsai", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    a = ap.parse_args()
    b = run_bonsai(a.bonsai, a.model, a.threads, a.steps, a.seq)
    print(f"bonsai: {b['tokens_per_s']:.2f} tokens/s, steps {['%.1f' % s for s in b['step_s']]} s, peak RSS {b['peak_rss'] / 1e9:.2f} GB", flush=True)
    p = subprocess.run([sys.executable, "-c", TORCH, str(a.threads), str(a.steps), str(a.seq)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("pytorch failed:\n" + p.stderr[-3000:])
    t = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"pytorch {t['torch']} + peft (fp32): {t['tokens_per_s']:.2f} tokens/s, steps {['%.1f' % s for s in t['step_s']]} s, peak RSS {t['peak_rss'] / 1e9:.2f} GB")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print()
    print(f"{time.strftime('%Y-%m-%d')}, {cpu}, {a.threads} threads, rank 8 × 6 targets, sequence {a.seq}, batch 1, {a.steps} timed steps")
    print()
    print("| engine | base | tokens/s | peak RSS |")
    print("|---|---|---|---|")
    print(f"| bonsai | Q4_0 GGUF | {b['tokens_per_s']:.2f} | {b['peak_rss'] / 1e9:.2f} GB |")
    print(f"| PyTorch + PEFT | fp32 | {t['tokens_per_s']:.2f} | {t['peak_rss'] / 1e9:.2f} GB |")
    print(f"| **ratio** | | **{b['tokens_per_s'] / t['tokens_per_s']:.2f}×** | |")


if __name__ == "__main__":
    main()
