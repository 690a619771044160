"""Generation (tg32) of Bonsai and llama.cpp on every weight type a PHI-2 GGUF file comes in, one run each.

run.sh's table covers the three headline files in depth; this one checks that no type falls off a fast
path. Files: `bonsai synth` makes those it can quantize (f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_K_M,
q5_K_M, q6_K); llama.cpp's own quantizer (llama_model_quantize) makes Q2_K and Q3_K_M from the q8_0 file,
since Bonsai has no q2_K/q3_K quantizer. The engines alternate per file, 2 threads by default.

    benchmarks/all_types.sh                       # every type
    TYPES="q2_K q3_K_M" benchmarks/all_types.sh
"""
import argparse, ctypes, json, os, subprocess, sys

sys.path.insert(0, os.path.dirname(__file__))
from compare import LLAMA

LLAMA_MADE = {"q2_K": "LLAMA_FTYPE_MOSTLY_Q2_K", "q3_K_M": "LLAMA_FTYPE_MOSTLY_Q3_K_M"}


def make(bonsai, out, t):
    path = os.path.join(out, f"phi2-synth-{t}.gguf")
    if os.path.exists(path):
        return path
    if t in LLAMA_MADE:
        import llama_cpp
        src = make(bonsai, out, "q8_0")
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = getattr(llama_cpp, LLAMA_MADE[t])
        p.allow_requantize = True   # from q8_0: random weights, so nothing is lost that matters for speed
        tmp = path + ".tmp"
        if llama_cpp.llama_model_quantize(src.encode(), tmp.encode(), ctypes.byref(p)) != 0:
            sys.exit(f"all_types.py: llama.cpp could not quantize {src} to {t}")
        os.replace(tmp, path)
    else:
        subprocess.run([bonsai, "synth", "--type", t, path], check=True, stdout=subprocess.DEVNULL)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bonsai", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/out")
    ap.add_argument("--ntg", type=int, default=32)
    ap.add_argument("types", nargs="+")
    a = ap.parse_args()
    print(f"| file | size | bonsai tg{a.ntg} | llama.cpp tg{a.ntg} | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for t in a.types:
        path = make(a.bonsai, a.out, t)
        b = subprocess.run([a.bonsai, "bench", "-m", path, "-t", str(a.threads), "-p", "0", "-n", str(a.ntg), "-r", "1",
                            "--json"], check=True, capture_output=True, text=True).stdout
        bt = json.loads(b.strip().splitlines()[-1])["samples"][0]
        l = subprocess.run([sys.executable, "-c", LLAMA, path, str(a.threads), "1", str(a.ntg), str(a.ntg)],
                           check=True, capture_output=True, text=True).stdout
        lt = json.loads(l.strip().splitlines()[-1])["tg"][0]
        print(f"| {os.path.basename(path)} | {os.path.getsize(path) / 1e9:.2f} GB | {bt:.2f} | {lt:.2f} | {bt / lt:.2f}× |",
              flush=True)


if __name__ == "__main__":
    main()
