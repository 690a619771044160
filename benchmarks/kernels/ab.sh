#!/usr/bin/env bash
# The AVX2 generation kernels of int8_x86.h at a git revision (A) against the working tree's (B), timed
# in turns in one process (ab.c says why and how). x86-64 only.
#
#   benchmarks/kernels/ab.sh                    HEAD against the working tree: q4_0 q8_0 q4_K q5_K q6_K
#   benchmarks/kernels/ab.sh HEAD~3 q4_K q6_K   an older revision, two types
#   AB_SHAPE="2560 200000 10" benchmarks/kernels/ab.sh HEAD q4_K
#                                               COLS ROWS PASSES: here a 288 MB matrix, read from memory
#
# Prints, per type, both versions' time per 256 weights, B/A (below 1: B is faster) and how many outputs
# differ (0 unless the change alters the arithmetic).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
rev=${1:-HEAD}
[ $# -gt 0 ] && shift
types=("$@")
[ ${#types[@]} -eq 0 ] && types=(q4_0 q8_0 q4_K q5_K q6_K)

swift build -c release --target CBonsai >/dev/null   # the quantizers and activation layouts, as in the tree
objs=.build/release/CBonsai.build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git show "$rev:Sources/CBonsai/int8_x86.h" >"$work/A.h"
cp Sources/CBonsai/int8_x86.h "$work/B.h"

# CBonsai's objects use OpenMP when Package.swift found libomp: link the same library (its search order).
omp=()
if nm "$objs/cpu.c.o" | grep -q ' U omp_'; then
    root=${BONSAI_OPENMP_ROOT:-$(ls -d /usr/lib/llvm-*/ 2>/dev/null | sort -V | while read -r d; do [ -e "$d/lib/libomp.so" ] && echo "${d%/}"; done | tail -1)}
    omp=(-L"$root/lib" -Wl,-rpath,"$root/lib" -lomp)
fi
clang -O2 -I Sources/CBonsai/include -I Sources/CBonsai -I "$work" benchmarks/kernels/ab.c "$objs"/*.o \
    "${omp[@]}" -lm -lpthread -o "$work/ab"
for t in "${types[@]}"; do "$work/ab" "$t" ${AB_SHAPE:-}; done
