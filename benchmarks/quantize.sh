#!/usr/bin/env bash
# `bonsai quantize` against llama.cpp's quantizer (llama_model_quantize, the code behind llama-quantize) on
# the same full-size f16 file, same threads; each output is compared byte for byte with llama.cpp's.
#
#   benchmarks/quantize.sh                          # q4_0 q4_K_M q5_K_M q6_K, 2 threads
#   THREADS=2 TYPES="q4_K_M" benchmarks/quantize.sh
#
# Bonsai quantizes on all cores (OpenMP); THREADS sets both OMP_NUM_THREADS and llama.cpp's nthread.
source "$(dirname "$0")/common.sh" "llama_cpp" "llama-cpp-python"
THREADS="${THREADS:-2}"
TYPES="${TYPES:-q4_0 q4_K_M q5_K_M q6_K}"
SRC="$OUT/phi2-synth-f16.gguf"
[ -f "$SRC" ] || "$BONSAI" synth --type f16 "$SRC"
cat "$SRC" >/dev/null   # into the page cache, so that neither engine's time includes reading the disk

seconds() { local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || return 1; python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.1f}')" "$(date +%s.%N)" "$s"; }

echo "date $(date -u '+%Y-%m-%d %H:%M') UTC; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads $THREADS"
echo
echo "| type | bonsai s | llama.cpp s | ratio | bytes |"
echo "| --- | ---: | ---: | ---: | --- |"
for t in $TYPES; do
    ours="$OUT/quantize-bonsai.gguf" theirs="$OUT/quantize-llama.gguf"
    b=$(OMP_NUM_THREADS="$THREADS" seconds "$BONSAI" quantize "$SRC" "$ours" --type "$t")
    l=$(seconds benchmarks/.venv/bin/python - "$SRC" "$theirs" "$t" "$THREADS" <<'PY'
import ctypes, sys, llama_cpp
src, dst, t, threads = sys.argv[1:5]
p = llama_cpp.llama_model_quantize_default_params()
p.nthread = int(threads)
p.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + t.upper())
sys.exit(llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p)))
PY
)
    same=$(cmp -s "$ours" "$theirs" && echo identical || echo DIFFERENT)
    echo "| $t | $b | $l | $(python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$l" "$b")× | $same |"
    rm -f "$ours" "$theirs"
done
