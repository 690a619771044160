#!/usr/bin/env bash
# Generation of Bonsai and llama.cpp on every weight type (benchmarks/all_types.py says how the files are made).
#
#   benchmarks/all_types.sh                            # all types, 2 threads
#   THREADS=2 TYPES="q2_K q3_K_M" benchmarks/all_types.sh
source "$(dirname "$0")/common.sh" "llama_cpp, numpy, gguf" "llama-cpp-python numpy gguf"
THREADS="${THREADS:-2}"
TYPES="${TYPES:-f16 q8_0 q6_K q5_K_M q5_1 q5_0 q4_1 q4_0 q4_K_M iq4_nl iq4_xs q3_K_M q2_K}"
benchmarks/.venv/bin/python benchmarks/all_types.py --bonsai "$BONSAI" --threads "$THREADS" $TYPES
