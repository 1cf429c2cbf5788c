#!/usr/bin/env bash
# The GPU check (`make gpu-check`): everything worth knowing about liandan on a new
# adapter, in one results file, in under 8 minutes on a real GPU:
#   1. the doctor (on a GPU run it must have picked the hardware adapter);
#   2. the kernel tests;
#   3. conv_report --tsv (the six convolution forms);
#   4. matmul_report at 1024, 2048 and 4096;
#   5. bench_train (MobileNetV2-CIFAR step and evaluation, beside PyTorch when importable,
#      on CUDA when it has it);
#   6. a timed training run: 200 steps of bench_train at batch 256 (synthetic images).
#
# Usage:
#   scripts/gpu-check.sh [--quick] [--out FILE]    build (if cargo is here) and run
#   scripts/gpu-check.sh --prepare                 build and copy the binaries to gpu-bin/
#   scripts/gpu-check.sh --bin gpu-bin [--out F]   run binaries made by --prepare (a
#                                                  machine without Rust: carry gpu-bin/)
# --quick shrinks every size, for a software adapter (lavapipe) or a smoke run.
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK=0
PREPARE=0
BIN=""
OUT="gpu-check-results.txt"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --prepare) PREPARE=1 ;;
        --bin) BIN="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/liandan-runtime-$(id -u)}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
EXAMPLES="doctor conv_report matmul_report bench_train"

# Builds the release examples and the kernel tests; prints the tests' binary.
build() {
    cargo build --release --quiet $(for e in $EXAMPLES; do printf -- '--example %s ' "$e"; done) >&2 || return 1
    cargo test --release --no-run --test kernels --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*kernels-[^"]*\)".*/\1/p' | tail -1
}

if [ "$PREPARE" = 1 ]; then
    tests=$(build) || exit 1
    mkdir -p gpu-bin
    for e in $EXAMPLES; do cp "target/release/examples/$e" gpu-bin/; done
    cp "$tests" gpu-bin/kernels
    strip gpu-bin/* 2>/dev/null || true
    du -sh gpu-bin
    exit 0
fi

if [ -z "$BIN" ]; then
    tests=$(build) || exit 1
    BIN=target/release/examples
    KERNELS="$tests"
else
    KERNELS="$BIN/kernels"
fi

: > "$OUT"
section() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)" | tee -a "$OUT"; }
# Runs a step with a time limit, its output into the results file; notes a failure.
step() {
    local limit=$1; shift
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT"
    local rc=${PIPESTATUS[0]}
    echo "[exit $rc after $((SECONDS - start)) s]" | tee -a "$OUT"
    [ "$rc" = 0 ] || FAILED="$FAILED $(basename "$1")"
}
FAILED=""

if [ "$QUICK" = 1 ]; then
    SIZES=256,512; TRAIN="--batch 16 --eval-batch 32 --steps 1"
    RUN="--batch 16 --eval-batch 32 --steps 2"
else
    SIZES=1024,2048,4096; TRAIN="--batch 256 --eval-batch 1024 --steps 10"
    RUN="--batch 256 --eval-batch 256 --steps 200"
fi
TORCH_CUDA=""
if [ "$QUICK" = 0 ] && command -v nvidia-smi >/dev/null; then TORCH_CUDA="--torch-cuda"; fi

section "machine"
{ uname -a; grep -m1 'model name' /proc/cpuinfo; nproc; command -v nvidia-smi >/dev/null && nvidia-smi -L; } 2>&1 | tee -a "$OUT"

section "doctor"
step 120 "$BIN/doctor"
if [ "$QUICK" = 0 ] && grep -q "software: slow" "$OUT"; then
    echo "gpu-check: the doctor picked a software adapter on a GPU run" | tee -a "$OUT"
    FAILED="$FAILED adapter"
fi

section "kernel tests"
step 300 "$KERNELS" --test-threads "$(nproc)" -q

section "conv_report --tsv"
step 120 "$BIN/conv_report" --tsv

section "matmul_report --sizes $SIZES"
step 120 "$BIN/matmul_report" --sizes "$SIZES"

section "bench_train $TRAIN $TORCH_CUDA"
step 180 "$BIN/bench_train" $TRAIN $TORCH_CUDA

section "training run: bench_train $RUN"
step 180 "$BIN/bench_train" $RUN --no-torch

section "summary"
if [ -z "$FAILED" ]; then
    echo "gpu-check: all steps passed; results in $OUT" | tee -a "$OUT"
else
    echo "gpu-check: failed:$FAILED; results in $OUT" | tee -a "$OUT"
    exit 1
fi
