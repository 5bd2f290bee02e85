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
p2phd() { "$VENV/bin/python" -m p2phd "$@"; }

[ -f "$WORK/src/toy.json" ] || p2phd toy "$WORK/src" --train 32 --test 4 --height 64 --width 128
[ -f "$WORK/data/dataset.json" ] || p2phd prep "$WORK/src" "$WORK/data"
p2phd train-global "$WORK/data" --run "$WORK/run" --instance-feat \
  --ngf 16 --n-downsample-global 3 --n-blocks-global 2 --ndf 16 --n-layers-d 2 \
  --no-vgg-loss --epochs "$EPOCHS" --decay-epochs "$EPOCHS" --num-workers 1 --log-every 500
p2phd encode-features "$WORK/run" "$WORK/data" --quiet
p2phd cluster "$WORK/run" --k 4
p2phd synthesize "$WORK/run" "$WORK/data/test/label" --inst "$WORK/data/test/inst" \
  --out "$WORK/styles" --variations 4 --vary class:6 --quiet

# The mean colour of the cars in each rendering, and the nearest palette colour.
"$VENV/bin/python" - "$WORK" <<'PY'
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
work = Path(sys.argv[1])
palette = np.array(json.loads((work / "src" / "toy.json").read_text())["car_palette"], float)
for label in sorted((work / "data" / "test" / "label").glob("*.png")):
    cars = np.asarray(Image.open(label)) == 6
    found = []
    for v in range(4):
        image = np.asarray(Image.open(work / "styles" / f"{label.stem}_v{v}.png"), float)
        distance = np.linalg.norm(palette - image[cars].mean(0), axis=1)
        found.append(f"cluster {v} -> palette {distance.argmin()} ({distance.min():.0f} away)")
    print(f"{label.stem}: " + "; ".join(found))
PY
echo "style grids: $WORK/styles/*_variations.png  (open $WORK/styles/index.html)"
