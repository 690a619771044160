"""Writes Tests/CBonsaiTests/Vectors/quant_vectors.safetensors: 64 rows of 256 f16 values of kinds that
stress a quantizer's search (zeros, constants, one sign, tiny, outliers, heavy tails, half zeros, integers,
plain normal) and the q2_K, q3_K, iq4_nl and iq4_xs bytes llama.cpp makes of them (llama_model_quantize,
ftypes Q2_K, Q3_K_S, IQ4_NL and IQ4_XS, without an importance matrix: ggml's quantize_row_q2_K_ref /
q3_K_ref, quantize_iq4_nl / iq4_xs). The rows go through a one-layer `bonsai synth` phi2 f16 file, as
blk.0.attn_q.weight, which every one of these ftypes leaves in its base type.

    benchmarks/.venv/bin/python tools/make_quant_vectors.py [--bonsai .build/release/bonsai]
"""
import argparse, ctypes, os, subprocess, tempfile
import numpy as np
import gguf, llama_cpp
from safetensors.numpy import save_file

ap = argparse.ArgumentParser()
ap.add_argument("--bonsai", default=".build/release/bonsai")
a = ap.parse_args()
ROWS, COLS, NAME = 64, 256, "blk.0.attn_q.weight"

rng = np.random.default_rng(23)
rows = []
for i in range(ROWS):
    kind, n = i % 9, rng.normal(size=COLS)
    v = [np.zeros(COLS), np.full(COLS, n[0]), np.abs(n), -np.abs(n), n * 1e-6,
         np.where(np.arange(COLS) % 97 == 5, n * 100, n), rng.standard_t(2, size=COLS),
         np.where(np.arange(COLS) < 128, 0, n), np.round(n * 3)][kind]
    rows.append(v.astype(np.float16))
rows = np.stack(rows)

with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "f16.gguf")
    subprocess.run([a.bonsai, "synth", "--type", "f16", "--layers", "1", "--hidden", str(COLS), "--ff", str(COLS),
                    "--vocab", "1000", src], check=True, stdout=subprocess.DEVNULL)
    r = gguf.GGUFReader(src, "r+")
    t = next(t for t in r.tensors if t.name == NAME)
    t.data[:ROWS] = rows
    t.data.flush() if hasattr(t.data, "flush") else None
    del r
    out = {"input": rows}
    for name, ftype in [("q2_K", llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K), ("q3_K", llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_S),
                        ("iq4_nl", llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_NL), ("iq4_xs", llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_XS)]:
        dst = os.path.join(tmp, f"{name}.gguf")
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype, p.nthread = ftype, 1
        assert llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p)) == 0
        q = next(t for t in gguf.GGUFReader(dst).tensors if t.name == NAME)
        assert q.tensor_type.name == name.upper(), q.tensor_type.name
        out[f"{name}.bytes"] = np.ascontiguousarray(np.asarray(q.data).reshape(COLS, -1)[:ROWS])
save_file(out, "Tests/CBonsaiTests/Vectors/quant_vectors.safetensors")
print("wrote", {k: v.shape for k, v in out.items()})
