#!/usr/bin/env bash
# Instance styles on toy scenes, end to end on a CPU: every toy car is painted in one of 4
# palette colours; train with --instance-feat, encode the instances, cluster the car class
# into 4 styles, then render each test scene once per car cluster and check that each
# cluster's cars come out in a distinct palette colour.
#   bash examples/toy_styles.sh [WORKDIR]      (default: ./toy_styles; TOY_EPOCHS default 20)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/examples/setup_env.sh"
WORK=$(realpath -m "${1:-$ROOT/toy_styles}")
EPOCHS=${TOY_EPOCHS:-20}
p2phd() { "$VENV/bin/p2phd" "$@"; }

[ -f "$WORK/src/toy.json" ] || p2phd toy "$WORK/src" --train 32 --test 4 --height 64 --width 128
[ -f "$WORK/data/dataset.json" ] || p2phd prep "$WORK/src" "$WORK/data"
p2phd train-global "$WORK/data" --run "$WORK/run" --instance-feat \
  --ngf 16 --n-downsample-global 3 --n-blocks-global 2 --ndf 16 --n-layers-d 2 \
  --no-vgg-loss --epochs "$EPOCHS" --decay-epochs "$EPOCHS" --num-workers 1 --log-every 500
p2phd encode-features "$WORK/run" "$WORK/data" --quiet
p2phd cluster "$WORK/run" --k 4
p2phd synthesize "$WORK/run" "$WORK/data/test/label" --inst "$WORK/data/test/inst" \
  --out "$WORK/styles" --variations 4 --vary class:6 --quiet

# Each cluster's cars, averaged over the test scenes, against each palette colour as the photos
# show it (the mean colour of the real cars of that colour, windscreens and wheels included).
"$VENV/bin/python" - "$WORK" <<'PY'
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
work = Path(sys.argv[1])
toy = json.loads((work / "src" / "toy.json").read_text())
test = work / "data" / "test"
keys = sorted(p.stem for p in (test / "label").glob("*.png"))
sums, counts = np.zeros((4, 3)), np.zeros(4)
for key in keys:
    inst = np.asarray(Image.open(test / "inst" / f"{key}.png")).astype(int)
    photo = np.asarray(Image.open(test / "img" / f"{key}.png"), float)
    for ident, style in toy["scenes"][key]["instances"].items():
        if style["class"] == toy["car_class"]:
            sums[style["palette_index"]] += photo[inst == int(ident)].sum(0)
            counts[style["palette_index"]] += (inst == int(ident)).sum()
reference = sums / np.maximum(counts, 1)[:, None]
for v in range(4):
    cars = [np.asarray(Image.open(work / "styles" / f"{key}_v{v}.png"), float)[
        np.asarray(Image.open(test / "label" / f"{key}.png")) == toy["car_class"]] for key in keys]
    distance = np.linalg.norm(reference - np.concatenate(cars).mean(0), axis=1)
    first, second = np.argsort(distance)[:2]
    print(f"cluster {v} -> palette {first} ({distance[first]:.0f} away; "
          f"next palette {second} {distance[second]:.0f} away)")
PY
echo "style grids: $WORK/styles/*_variations.png  (open $WORK/styles/index.html)"
