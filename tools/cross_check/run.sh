#!/usr/bin/env bash
# The C target on arm64 against this machine: compiles Sources/CBonsai with cross_check.c for the host
# (its ISA kernels dispatched at run time) and for arm64 (the portable paths, plus NEON where the target
# has kernels), both with clang and the flags Package.swift uses but without OpenMP (how the target
# builds where no libomp is found), runs the arm64 build under qemu-user (as a CPU with SDOT and as one
# without), and requires every run to pass its checks and to print identical hashes of everything that
# must be bit-exact.
#
# A third build runs the VNNI kernels (matmul_vnni.c: 256-bit dpbusd, and with AVX512-VNNI the 512-bit
# prompt kernels) through SIMDe's portable implementations, once per flavor (AVX512-VNNI, AVX-VNNI), so
# that they are checked on any x86 CPU: its matmul outputs must equal the AVX2 build's bit for bit, and its
# checks pass. On a CPU with VNNI the host build's own VNNI kernels must equal AVX2's as well.
#
#   apt-get install gcc-aarch64-linux-gnu qemu-user libsimde-dev   # arm64 libc, linker, emulator; SIMDe
#   tools/cross_check/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in clang gcc aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null || { echo "cross_check: $tool not found (apt-get install gcc-aarch64-linux-gnu qemu-user)" >&2; exit 2; }
done
[ -f /usr/include/simde/x86/avx512/dpbusd.h ] || { echo "cross_check: SIMDe not found (apt-get install libsimde-dev)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-O3 -std=gnu11 -ffp-contract=on -fno-math-errno -Wall -Wno-unknown-pragmas -ISources/CBonsai/include -ISources/CBonsai)
for arch in host vnni arm64; do
    target=(); [ "$arch" = arm64 ] && target=(--target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu)
    [ "$arch" = vnni ] && target=(-DBONSAI_VNNI_EMULATED)
    mkdir -p "$out/$arch"
    for f in Sources/CBonsai/*.c tools/cross_check/cross_check.c; do
        extra=(); [ "$arch" = vnni ] && [ "$(basename "$f")" = matmul_vnni.c ] && extra=(-mavx2 -mfma -mf16c -Wno-psabi)
        clang "${target[@]}" "${extra[@]}" "${flags[@]}" -c "$f" -o "$out/$arch/$(basename "$f" .c).o"
    done
done
gcc "$out"/host/*.o -lm -o "$out/host/check"
gcc "$out"/vnni/*.o -lm -o "$out/vnni/check"
aarch64-linux-gnu-gcc "$out"/arm64/*.o -lm -o "$out/arm64/check"
# The AVX2 kernels are the x86 reference (BONSAI_NO_VNNI); on a CPU with VNNI the native kernels must equal them too.
BONSAI_NO_VNNI=1 "$out/host/check" "$out/host-x86.txt" > "$out/host.txt" 2> "$out/host-log.txt" || { cat "$out/host-log.txt" >&2; exit 1; }
cat "$out/host-log.txt" >&2
if grep -q "VNNI" "$out/host-log.txt"; then   # the CPU features it prints: a second run only where there is VNNI
    "$out/host/check" "$out/native-x86.txt" > "$out/native.txt" 2> "$out/native-log.txt" || { cat "$out/native-log.txt" >&2; exit 1; }
    if ! diff "$out/host.txt" "$out/native.txt" || ! diff "$out/host-x86.txt" "$out/native-x86.txt"; then
        echo "cross_check: this CPU's VNNI kernels and AVX2's differ where results must be bit-exact" >&2
        exit 1
    fi
    native=", and so do this CPU's own"
fi
for flavor in avx512vnni avxvnni; do
    BONSAI_VNNI_EMULATED=$flavor "$out/vnni/check" "$out/vnni-x86.txt" > "$out/vnni.txt" 2> "$out/vnni-log.txt" \
        || { cat "$out/vnni-log.txt" >&2; echo "cross_check: the emulated $flavor build failed its checks" >&2; exit 1; }
    grep -q "VNNI(emulated)" "$out/vnni-log.txt" || { echo "cross_check: the $flavor kernels were not chosen" >&2; exit 1; }
    if ! diff "$out/host.txt" "$out/vnni.txt" || ! diff "$out/host-x86.txt" "$out/vnni-x86.txt"; then
        echo "cross_check: the $flavor kernels (emulated) and AVX2's differ where results must be bit-exact" >&2
        exit 1
    fi
done
# Twice: qemu's default CPU has ARMv8.2's SDOT; a Cortex-A72 (ARMv8.0) takes the baseline kernels.
for cpu in max cortex-a72; do
    qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu "$out/arm64/check" > "$out/arm64-$cpu.txt"
    if ! diff "$out/host.txt" "$out/arm64-$cpu.txt"; then
        echo "cross_check: arm64 ($cpu) and host differ where results must be bit-exact" >&2
        exit 1
    fi
done
echo "cross_check: host and arm64 (with and without SDOT) agree ($(wc -l < "$out/host.txt") hashed results);" \
     "the VNNI kernels (emulated, both flavors) equal AVX2's ($(wc -l < "$out/host-x86.txt") hashed matmuls)${native:-}"
