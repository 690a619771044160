#!/usr/bin/env bash
# LoRA training speed: Bonsai on a full-size PHI-2-shaped Q4_0 GGUF vs PyTorch + PEFT in fp32 on the same
# shape (rank 8 on q_proj,k_proj,v_proj,dense,fc1,fc2; sequence 256; batch 1; AdamW), same threads, one run.
#
#   benchmarks/train.sh                    # 2 threads, 4 timed steps each (after 1 warm-up step)
#   THREADS=2 STEPS=6 benchmarks/train.sh
#
# PyTorch, transformers and PEFT come from PyPI into benchmarks/.venv (ignored by git). PyTorch needs
# ~12 GB of RAM for the fp32 model; the synthesized Q4_0 file goes to benchmarks/out/ (1.6 GB, ignored).
source "$(dirname "$0")/common.sh" "torch, transformers, peft" "torch transformers peft"
THREADS="${THREADS:-2}"
STEPS="${STEPS:-4}"

MODEL="$OUT/phi2-synth-q4_0.gguf"
[ -f "$MODEL" ] || "$BONSAI" synth --type q4_0 "$MODEL"

benchmarks/.venv/bin/python benchmarks/train_compare.py --bonsai "$BONSAI" --model "$MODEL" --threads "$THREADS" --steps "$STEPS"
