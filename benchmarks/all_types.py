"""Generation (tg32) of Bonsai and llama.cpp on every weight type a PHI-2 GGUF file comes in, one run each.

run.sh's table covers the three headline files in depth; this one checks that no type falls off a fast
path. Files: `bonsai synth` makes each (f16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K_M, q4_K_M, q5_K_M,
q6_K, iq4_nl, iq4_xs; the mixes byte for byte as llama-quantize would). The engines alternate per file,
2 threads by default.

    benchmarks/all_types.sh                       # every type
    TYPES="q2_K q3_K_M" benchmarks/all_types.sh
"""
import argparse, json, os, subprocess, sys

sys.path.insert(0, os.path.dirname(__file__))
from compare import LLAMA


def make(bonsai, out, t):
    path = os.path.join(out, f"phi2-synth-{t}.gguf")
    if not os.path.exists(path):
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
