#!/usr/bin/env bash
# The coarse-to-fine chain of the paper on toy scenes, on a CPU in a few minutes:
# prep -> train-global (G1 at half resolution) -> train-local (G2 around the frozen G1 at full
# resolution) -> train-joint (both together) -> synthesize. The same chain as
# examples/cityscapes_1024p.sh, with tiny nets and 64x128 scenes.
#   bash examples/toy_coarse_to_fine.sh [WORKDIR]        (default: ./toy_c2f)
# TOY_EPOCHS sets the length of each stage's schedule (default 6).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/examples/setup_env.sh"
WORK=$(realpath -m "${1:-$ROOT/toy_c2f}")
EPOCHS=${TOY_EPOCHS:-6}
p2phd() { "$VENV/bin/p2phd" "$@"; }
common=(--no-vgg-loss --num-workers 1 --sample-every 200 --log-every 100)

[ -f "$WORK/src/toy.json" ] || p2phd toy "$WORK/src" --train 48 --test 6 --height 64 --width 128
[ -f "$WORK/data/dataset.json" ] || p2phd prep "$WORK/src" "$WORK/data"
# G1 at half resolution (64x32): ngf 16, 3 downsamplings, 2 blocks.
p2phd train-global "$WORK/data" --run "$WORK/global" --load-width 64 \
  --ngf 16 --n-downsample-global 3 --n-blocks-global 2 --ndf 16 --n-layers-d 2 \
  --epochs "$EPOCHS" --decay-epochs "$EPOCHS" "${common[@]}"
# G2 (ngf 8 = G1's 16 / 2) at full resolution with a 3-scale D; G1 frozen for the first
# half of the constant-lr epochs, then train-joint carries on with the same schedule.
p2phd train-local "$WORK/data" --run "$WORK/local" --global "$WORK/global" \
  --n-blocks-local 2 --epochs "$EPOCHS" --decay-epochs "$EPOCHS" \
  --fix-global-epochs $(( (EPOCHS + 1) / 2 )) "${common[@]}"
p2phd train-joint "$WORK/data" --run "$WORK/local" --num-workers 1 --log-every 100
p2phd synthesize "$WORK/local" "$WORK/data/test/label" --inst "$WORK/data/test/inst" \
  --out "$WORK/synth" --quiet

echo
echo "synthesized test images: $WORK/synth/  (open $WORK/synth/index.html)"
echo "training samples:        $WORK/global/samples/index.html, $WORK/local/samples/index.html"
