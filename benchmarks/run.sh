#!/usr/bin/env bash
# Side-by-side speed of Bonsai and llama.cpp on the same full-size PHI-2-shaped files.
#
#   benchmarks/run.sh                      # q4_0 q8_0 q4_K_M, 2 threads, 3 repetitions
#   THREADS=2 TYPES="q4_0" REPS=5 benchmarks/run.sh
#
# llama.cpp comes from PyPI (llama-cpp-python compiles it) into benchmarks/.venv (ignored by git).
# Models are synthesized with `bonsai synth` into benchmarks/out/ (2-3 GB each, ignored by git).
# Prints a markdown table with the ratios; copy it into benchmarks/RESULTS.md with the date.
source "$(dirname "$0")/common.sh" "llama_cpp, numpy, gguf" "llama-cpp-python numpy gguf"
THREADS="${THREADS:-2}"
TYPES="${TYPES:-q4_0 q8_0 q4_K_M}"
REPS="${REPS:-3}"

MODELS=()
for t in $TYPES; do
    f="$OUT/phi2-synth-$t.gguf"
    [ -f "$f" ] || "$BONSAI" synth --type "$t" "$f"
    MODELS+=("$f")
done

benchmarks/.venv/bin/python benchmarks/compare.py --bonsai "$BONSAI" --threads "$THREADS" --reps "$REPS" "${MODELS[@]}"
