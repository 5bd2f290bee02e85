#!/usr/bin/env bash
# The measured-field demo, end to end on a CPU in a few minutes: a signed field (a toy
# magnetogram, in G) and a known nonlinear, blurred transform of it with noise, as FITS
# files in the measured-data forks' Train/Input, Train/Target layout. prep maps each side
# to [-1, 1] between declared saturation limits, training learns the transform (no flips:
# a field's sign and handedness matter), synthesize writes FITS in physical units with the
# input's header, and evaluate prints the held-out correlation coefficient.
#   bash examples/field_demo.sh [WORKDIR]          (default: ./field_demo)
# Rerunning continues where it stopped. FIELD_EPOCHS shortens or lengthens training.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/examples/setup_env.sh"
WORK=$(realpath -m "${1:-$ROOT/field_demo}")
EPOCHS=${FIELD_EPOCHS:-10}
p2phd() { "$VENV/bin/p2phd" "$@"; }

[ -d "$WORK/src/Train" ] || p2phd toy "$WORK/src" --kind field --format fits \
  --train 32 --test 4 --height 64 --width 128
[ -f "$WORK/data/dataset.json" ] || p2phd prep "$WORK/src" "$WORK/data" \
  --in-range -3000,3000 --out-range -250,250 --in-units G --out-units a.u.
# A small G1 (ngf 16, 3 downsamplings, 3 blocks) and D; the VGG loss (ImageNet photos) is
# off by default for measured fields.
p2phd train-global "$WORK/data" --run "$WORK/run" \
  --ngf 16 --n-downsample-global 3 --n-blocks-global 3 --ndf 16 \
  --epochs "$EPOCHS" --decay-epochs "$(( EPOCHS / 2 ))" --batch-size 4 \
  --sample-every 40 --log-every 40 --num-workers 1
p2phd synthesize "$WORK/run" "$WORK/src/Test/Input" --out "$WORK/synth" --quiet
p2phd evaluate "$WORK/run" "$WORK/data" --bin 4 --out "$WORK/eval"
cc=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pooled"]["cc"])' \
  "$WORK/eval/eval.json")

echo
echo "held-out correlation coefficient (pooled over the test fields): $cc"
echo "synthesized FITS (physical units, the input's header): $WORK/synth/"
echo "training samples: $WORK/run/samples/index.html"
echo "evaluation:       $WORK/eval/index.html"
