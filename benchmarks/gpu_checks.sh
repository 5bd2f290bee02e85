#!/usr/bin/env bash
# Every GPU check and timing in one call (for a lent GPU machine):
#   bash benchmarks/gpu_checks.sh [OUTDIR]
# Runs the CUDA tests, then the benchmark cases in fp32, bf16, bf16 + channels_last,
# bf16 + torch.compile, bf16 + activation checkpointing (the memory option, 1024p and the
# 4096x2048 two-enhancer step), then synthesize end to end (serial vs pipeline) and eager vs
# compiled step and inference; writes gpu.txt, gpu_tests.log, bench.log and bench-*.json
# into OUTDIR (default: $OUT, else .).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=${1:-${OUT:-.}}
PY=${PYTHON:-python3}
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUTDIR/gpu.txt"
"$PY" -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tee "$OUTDIR/gpu_tests.log"
bench() {  # NAME ARGS...
  local name=$1; shift
  "$PY" benchmarks/bench.py "$@" --json "$OUTDIR/bench-$name.json" 2>&1 | tee -a "$OUTDIR/bench.log"
}
bench fp32 --precision fp32
bench bf16 --precision bf16
bench bf16_cl --precision bf16 --channels-last
bench bf16_compile --precision bf16 --compile
bench bf16_ckpt --precision bf16 --activation-checkpointing --cases train1024,train2048
bench bf16_synth --precision bf16 --cases synth,compile
