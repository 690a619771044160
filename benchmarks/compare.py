"""Bonsai vs llama.cpp: pp512 and tg128 tokens/s on the same GGUF files, same threads, one run.

Each engine runs in its own process; for every file the engines alternate so that drift of this shared
machine hits both alike. The memory read bandwidth is measured too, to give the bandwidth bound of
generation: weight bytes read per token ÷ bandwidth. Then generation after --depth cached positions.
"""
import argparse, json, os, platform, statistics, subprocess, sys, time

LLAMA = r'''
import json, random, sys, time
from llama_cpp import Llama
path, threads, reps, npp, ntg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
llm = Llama(model_path=path, n_ctx=npp + ntg + 8, n_batch=512, n_ubatch=512, n_threads=threads,
            n_threads_batch=threads, verbose=False)
random.seed(42)
toks = [random.randrange(50000) for _ in range(npp)]
pp, tg = [], []
for rep in range(reps + 1):                       # the first round warms up
    llm.reset(); t = time.perf_counter(); llm.eval(toks); d = time.perf_counter() - t
    if rep: pp.append(npp / d)
    llm.reset(); t = time.perf_counter()
    for i in range(ntg): llm.eval([toks[i]])
    d = time.perf_counter() - t
    if rep: tg.append(ntg / d)
print(json.dumps({"pp": pp, "tg": tg}))
'''

# Generation after `depth` cached positions (llama-bench's -d): the cache is filled once; each round
# drops what the last one generated (eval removes cached positions from n_tokens on).
LLAMA_DEPTH = r'''
import json, random, sys, time
from llama_cpp import Llama
path, threads, reps, depth, ntg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
llm = Llama(model_path=path, n_ctx=depth + ntg + 8, n_batch=512, n_ubatch=512, n_threads=threads,
            n_threads_batch=threads, verbose=False)
random.seed(42)
toks = [random.randrange(50000) for _ in range(depth + ntg)]
llm.eval(toks[:depth])
tg = []
for rep in range(reps + 1):                       # the first round warms up
    llm.n_tokens = depth; t = time.perf_counter()
    for i in range(ntg): llm.eval([toks[depth + i]])
    d = time.perf_counter() - t
    if rep: tg.append(ntg / d)
print(json.dumps({"tg": tg}))
'''


def bandwidth_gbs():
    """Read bandwidth with all threads: byte-wise max (SIMD, far faster than memory) over a 2 GiB array
    split across threads, one stream per thread. This VM reads faster with several streams far apart per
    thread, as Bonsai's generation kernels do, so this is an estimate, not a ceiling: q8_0 generation read
    129% of it in run 14. (numpy over four streams, 64-256 KiB per call, read slower: 11-15 GB/s.)"""
    import numpy as np
    from concurrent.futures import ThreadPoolExecutor
    n = os.cpu_count() or 2
    a = np.ones(1 << 31, dtype=np.uint8)  # 2 GiB
    parts = np.array_split(a, n)
    best = 0.0
    with ThreadPoolExecutor(n) as ex:
        for _ in range(5):
            t = time.perf_counter()
            list(ex.map(np.max, parts))
            best = max(best, a.nbytes / (time.perf_counter() - t) / 1e9)
    return best


def weight_bytes_per_token(path):
    """Bytes of every matrix that generation reads per token (all but the embedding table)."""
    import gguf
    r = gguf.GGUFReader(path)
    return sum(int(t.n_bytes) for t in r.tensors if t.name != "token_embd.weight")


def bonsai(binary, path, threads, reps):
    out = subprocess.run([binary, "bench", "-m", path, "-t", str(threads), "-p", "512", "-n", "128",
                          "-r", str(reps), "--json"], check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        j = json.loads(line)
        res["pp" if j["test"].startswith("pp") else "tg"] = j["samples"]
        res["rss"] = j["peak_rss_bytes"]
    return res


def llama(path, threads, reps):
    out = subprocess.run([sys.executable, "-c", LLAMA, path, str(threads), str(reps), "512", "128"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bonsai_depth(binary, path, threads, reps, depth, ntg):
    out = subprocess.run([binary, "bench", "-m", path, "-t", str(threads), "-p", "0", "-n", str(ntg), "-d", str(depth),
                          "-r", str(reps), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["samples"]


def llama_depth(path, threads, reps, depth, ntg):
    out = subprocess.run([sys.executable, "-c", LLAMA_DEPTH, path, str(threads), str(reps), str(depth), str(ntg)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["tg"]


def fmt(xs):
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bonsai", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--depth", type=int, default=1024, help="cached positions for the tg-at-depth table (0: skip)")
    ap.add_argument("--depth-gen", type=int, default=32, help="tokens generated at that depth")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    import llama_cpp
    bw = bandwidth_gbs()   # measured again beside each file: the shared machine's bandwidth drifts
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; CPU {cpu}, {os.cpu_count()} cores; "
          f"threads {a.threads}; read bandwidth {bw:.1f} GB/s; llama-cpp-python {llama_cpp.__version__}\n")
    print("| file | size | bonsai pp512 | llama.cpp pp512 | ratio | bonsai tg128 | llama.cpp tg128 | ratio | "
          "read GB/s | tg bound | bonsai % of bound | bonsai peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path in a.models:
        bw = bandwidth_gbs()
        b1 = bonsai(a.bonsai, path, a.threads, a.reps)
        l1 = llama(path, a.threads, a.reps)
        b2 = bonsai(a.bonsai, path, a.threads, a.reps)   # alternate: B L B L
        l2 = llama(path, a.threads, a.reps)
        bpp, btg = b1["pp"] + b2["pp"], b1["tg"] + b2["tg"]
        lpp, ltg = l1["pp"] + l2["pp"], l1["tg"] + l2["tg"]
        bw = max(bw, bandwidth_gbs())   # the higher of the readings before and after this file's runs
        bound = bw * 1e9 / weight_bytes_per_token(path)
        size = os.path.getsize(path) / 1e9
        print(f"| {os.path.basename(path)} | {size:.2f} GB | {fmt(bpp)} | {fmt(lpp)} | "
              f"{statistics.mean(bpp) / statistics.mean(lpp):.2f}× | {fmt(btg)} | {fmt(ltg)} | "
              f"{statistics.mean(btg) / statistics.mean(ltg):.2f}× | {bw:.1f} | {bound:.1f} | "
              f"{100 * statistics.mean(btg) / bound:.0f}% | {max(b1['rss'], b2['rss']) / 1e9:.2f} GB |", flush=True)
    if a.depth > 0:   # a long chat: every generated token reads the whole cache as well as the weights
        test = f"tg{a.depth_gen} @ d{a.depth}"
        print(f"\n| file | bonsai {test} | llama.cpp {test} | ratio |")
        print("| --- | ---: | ---: | ---: |")
        for path in a.models:
            b = bonsai_depth(a.bonsai, path, a.threads, a.reps, a.depth, a.depth_gen)
            l = llama_depth(path, a.threads, a.reps, a.depth, a.depth_gen)
            b += bonsai_depth(a.bonsai, path, a.threads, a.reps, a.depth, a.depth_gen)   # B L B L
            l += llama_depth(path, a.threads, a.reps, a.depth, a.depth_gen)
            print(f"| {os.path.basename(path)} | {fmt(b)} | {fmt(l)} | {statistics.mean(b) / statistics.mean(l):.2f}× |",
                  flush=True)


if __name__ == "__main__":
    main()
