"""Writes Tests/CBonsaiTests/Vectors/dequant_vectors.safetensors: for each quant type, random but valid
blocks (raw bytes, 4 rows of 512 values) and gguf-py's dequantization of them (bit-identical to ggml's
dequantize_row_*, as the fixture README records). The test compares Bonsai's dequantizers bit for bit.

    benchmarks/.venv/bin/python tools/make_dequant_vectors.py
"""
import numpy as np
from gguf import GGMLQuantizationType as T, quants
from safetensors.numpy import save_file

rng = np.random.default_rng(2024)
# byte offsets of the f16 scales inside each block: set to small finite values so the outputs are finite
SCALES = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q2_K: [80, 82],
          T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208], T.IQ4_NL: [0], T.IQ4_XS: [0]}
BLOCK = {T.Q4_0: (32, 18), T.Q4_1: (32, 20), T.Q5_0: (32, 22), T.Q5_1: (32, 24), T.Q8_0: (32, 34),
         T.Q2_K: (256, 84), T.Q3_K: (256, 110), T.Q4_K: (256, 144), T.Q5_K: (256, 176), T.Q6_K: (256, 210),
         T.IQ4_NL: (32, 18), T.IQ4_XS: (256, 136)}
out = {}
rows, cols = 4, 512
for t, offs in SCALES.items():
    bs, size = BLOCK[t]
    nb = rows * cols // bs
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    for o in offs:
        raw[:, o:o + 2] = np.frombuffer(np.float16(rng.uniform(0.001, 0.05, nb)).astype(np.float16).tobytes(),
                                        dtype=np.uint8).reshape(nb, 2)
    raw = raw.reshape(rows, -1)
    deq = quants.dequantize(raw, t).astype(np.float32)
    name = t.name.lower().replace("_k", "_K")   # ggml's spelling: q4_K, iq4_xs
    out[f"{name}.bytes"] = raw
    out[f"{name}.values"] = deq.reshape(rows, cols)
save_file(out, "Tests/CBonsaiTests/Vectors/dequant_vectors.safetensors")
print("wrote", len(out) // 2, "types")
