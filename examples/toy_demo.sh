#!/usr/bin/env bash
# The toy demo, end to end on a CPU in a few minutes: set up .venv, make procedural street
# scenes, prep them, train the global generator, synthesize the test scenes.
#   bash examples/toy_demo.sh [WORKDIR]          (default: ./toy_demo)
# Rerunning continues where it stopped. TOY_EPOCHS shortens or lengthens training.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/examples/setup_env.sh"
WORK=$(realpath -m "${1:-$ROOT/toy_demo}")
EPOCHS=${TOY_EPOCHS:-25}
p2phd() { "$VENV/bin/p2phd" "$@"; }

[ -f "$WORK/src/toy.json" ] || p2phd toy "$WORK/src" --train 48 --test 6 --height 64 --width 128
[ -f "$WORK/data/dataset.json" ] || p2phd prep "$WORK/src" "$WORK/data"
# A small G1 (ngf 16, 3 downsamplings, 2 blocks) and D, with the instance-feature encoder E
# (styles you can pick and edit); the VGG loss needs ImageNet weights (p2phd weights fetch
# vgg19), which a fresh machine does not have, so it is off here.
# G's weights are averaged as it trains (--ema-beta 0.999 after step 500), and every 5
# epochs the test scenes are scored under the toy's oracle segmenter (mIoU); BEST names the
# best-scored checkpoint (synthesize "$WORK/run@best").
p2phd train-global "$WORK/data" --run "$WORK/run" --instance-feat \
  --ngf 16 --n-downsample-global 3 --n-blocks-global 2 --ndf 16 --n-layers-d 2 \
  --no-vgg-loss --epochs "$EPOCHS" --decay-epochs "$EPOCHS" \
  --sample-every 200 --log-every 100 --num-workers 1 \
  --eval-every "$(( EPOCHS >= 5 ? 5 : 1 ))" --segmenter "$WORK/src/segmenter.pt2"
# The style bank: every training instance encoded, each class clustered into up to 4 styles.
[ -f "$WORK/run/clusters.safetensors" ] || {
  p2phd encode-features "$WORK/run" "$WORK/data" --quiet
  p2phd cluster "$WORK/run" --k 4 --quiet
}
p2phd synthesize "$WORK/run" "$WORK/data/test/label" --inst "$WORK/data/test/inst" \
  --out "$WORK/synth" --quiet
# How good is it: the toy's exact segmenter on the synthesized test images (mIoU), as the
# paper measures Cityscapes with a segmentation net.
p2phd evaluate "$WORK/run" "$WORK/data" --segmenter "$WORK/src/segmenter.pt2" \
  --out "$WORK/eval"

echo
echo "synthesized test images: $WORK/synth/  (open $WORK/synth/index.html)"
echo "training samples:        $WORK/run/samples/index.html"
echo "evaluation:              $WORK/eval/index.html"
echo
echo "next, type:"
echo "  source $VENV/bin/activate"
echo "  p2phd edit $WORK/run $WORK/data/test/label --inst $WORK/data/test/inst"
