#!/usr/bin/env bash
# The paper's instance-feature recipe (NVIDIA/pix2pixHD train_512p_feat.sh, test_512p_feat.sh)
# and its manipulations: train G1 with the feature encoder E at 512p, encode every training
# instance, cluster each class into 10 styles, then synthesize with random styles, with ten
# styles of the cars, and with trees turned into buildings.
#
#   CITYSCAPES=~/datasets/cityscapes \
#     bash examples/cityscapes_features.sh
#
# Cityscapes labelIds: 26 car, 21 vegetation, 11 building. Several GPUs for training:
#   P2PHD="torchrun --nproc-per-node 8 --no-python p2phd" ... bash examples/cityscapes_features.sh
set -euo pipefail
: "${CITYSCAPES:?set CITYSCAPES to the raw Cityscapes folder (gtFine/, leftImg8bit/)}"
# VGG (optional): a local vgg19-dcbb9e9d.pth; unset, the cached one (fetched once if missing)
vgg=()
if [ -n "${VGG:-}" ]; then vgg=(--vgg-weights "$VGG"); else p2phd weights fetch vgg19 --quiet; fi
DATA=${DATA:-data/cityscapes}
RUNS=${RUNS:-runs}
RUN="$RUNS/label2city_512p_feat"
read -r -a train <<< "${P2PHD:-p2phd}"

[ -f "$DATA/dataset.json" ] || p2phd prep "$CITYSCAPES" "$DATA" --label-nc 35 --width 2048 \
  --workers "$(nproc)"
"${train[@]}" train-global "$DATA" --run-dir "$RUN" --instance-feat --load-width 1024 \
  "${vgg[@]}"
p2phd encode-features "$RUN" "$DATA"          # at the training resolution (1024x512)
p2phd cluster "$RUN" --k 10                   # instances under 1/64 of the image left out
test=("$DATA/test/label" --inst "$DATA/test/inst" --width 1024)
p2phd synthesize "$RUN" "${test[@]}" --out results/512p_feat/random --seed 0
p2phd synthesize "$RUN" "${test[@]}" --out results/512p_feat/cars --variations 10 --vary class:26
p2phd synthesize "$RUN" "${test[@]}" --out results/512p_feat/trees_to_buildings --relabel 21:11
p2phd synthesize "$RUN" "${test[@]}" --out results/512p_feat/encoded \
  --style-from "$DATA/test/img"  # each photo's own instance styles (paired by name)
