#!/usr/bin/env bash
# The weight average's effect on the README toy demo recipe (issue 21): the demo's data and
# nets, trained with seeds 0, 1, 2; each run scored twice on the test scenes under the toy's
# oracle segmenter, with its averaged weights and with its raw ones (the same steps, the
# same run), then the wall time of 200 steps with and without the average.
#   bash benchmarks/ema_toy.sh [WORKDIR]      (prints one JSON line per run, then timings)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/examples/setup_env.sh"
WORK=$(realpath -m "${1:-$ROOT/ema_toy}")
EPOCHS=${TOY_EPOCHS:-25}
p2phd() { "$VENV/bin/p2phd" "$@"; }
NETS=(--instance-feat --ngf 16 --n-downsample-global 3 --n-blocks-global 2 --ndf 16
      --n-layers-d 2 --no-vgg-loss --num-workers 1 --quiet)

[ -f "$WORK/src/toy.json" ] || p2phd toy "$WORK/src" --train 48 --test 6 --height 64 --width 128
[ -f "$WORK/data/dataset.json" ] || p2phd prep "$WORK/src" "$WORK/data" --quiet
score() {  # run weights -> "miou psnr": the style bank encoded by that E, then the scores
  p2phd encode-features "$1" "$WORK/data" --weights "$2" --quiet
  p2phd cluster "$1" --k 4 --quiet
  p2phd evaluate "$1" "$WORK/data" --segmenter "$WORK/src/segmenter.pt2" --weights "$2" \
    --out "$1/eval-$2" --json --quiet \
    | "$VENV/bin/python" -c 'import json,sys; s=json.load(sys.stdin); print(s["segmentation"]["miou"], s["psnr"])'
}
for seed in 0 1 2; do
  run="$WORK/run_seed$seed"
  p2phd train-global "$WORK/data" --run "$run" "${NETS[@]}" --seed "$seed" \
    --epochs "$EPOCHS" --decay-epochs "$EPOCHS" --sample-every 100000 --log-every 100
  read -r ema_miou ema_psnr <<< "$(score "$run" ema)"
  read -r raw_miou raw_psnr <<< "$(score "$run" raw)"
  echo "{\"seed\": $seed, \"ema_miou\": $ema_miou, \"raw_miou\": $raw_miou, \"ema_psnr\": $ema_psnr, \"raw_psnr\": $raw_psnr}"
done
for beta in 0 0.999; do  # steps/s over steps 101..300, averaging from the first step on
  rm -rf "$WORK/timing_$beta"
  p2phd train-global "$WORK/data" --run "$WORK/timing_$beta" "${NETS[@]}" --ema-beta "$beta" \
    --ema-start 0 --max-steps 300 --sample-every 100000 --save-every 100000 --log-every 100
  rate=$(tail -1 "$WORK/timing_$beta/log.jsonl" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["it_per_s"])')
  echo "{\"ema_beta\": $beta, \"steps_per_s\": $rate}"
done
