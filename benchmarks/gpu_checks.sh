#!/usr/bin/env bash
# Every GPU check and timing in one call (for a lent GPU machine):
#   bash benchmarks/gpu_checks.sh [OUTDIR]
# Runs the CUDA tests, then the benchmark cases in fp32, bf16, bf16 + channels_last and
# bf16 + torch.compile; writes gpu_tests.log and bench-*.json into OUTDIR (default: $OUT or .).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=${1:-${OUT:-.}}
PY=${PYTHON:-python3}
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUTDIR/gpu.txt"
"$PY" -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tee "$OUTDIR/gpu_tests.log"
for variant in "--precision fp32" "--precision bf16" "--precision bf16 --channels-last" \
               "--precision bf16 --compile"; do
  name=$(echo "$variant" | tr -d '-' | tr ' ' '_')
  "$PY" benchmarks/bench.py $variant --json "$OUTDIR/bench-$name.json" 2>&1 | tee -a "$OUTDIR/bench.log"
done
