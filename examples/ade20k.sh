#!/usr/bin/env bash
# ADE20K scene parsing (150 classes, no instance maps), paper-style: G1 (ngf 64, 4
# downsamplings, 9 blocks) with a 2-scale D, LSGAN + feature matching + VGG, Adam 2e-4,
# 100 epochs + 100 of linear decay, batch 1, at 256 pixels wide (the size later papers compare
# pix2pixHD at on ADE20K). ADE20K's 0 ("unlabeled") is a class of its own: label_nc 151.
#
#   ADE20K=~/datasets/ADEChallengeData2016 \
#     bash examples/ade20k.sh
#
# ADE20K is the folder the official zip unpacks (images/, annotations/; or its parent).
set -euo pipefail
: "${ADE20K:?set ADE20K to the unpacked ADEChallengeData2016 folder}"
# VGG (optional): a local vgg19-dcbb9e9d.pth; unset, the cached one (fetched once if missing)
vgg=()
if [ -n "${VGG:-}" ]; then vgg=(--vgg-weights "$VGG"); else p2phd weights fetch vgg19 --quiet; fi
DATA=${DATA:-data/ade20k}
RUNS=${RUNS:-runs}
read -r -a train <<< "${P2PHD:-p2phd}"

# Images of every aspect ratio, 256 wide (sizes rounded to multiples of 32): batch 1 takes
# them as they are. --no-instance is the dataset's default (it has no instance maps).
[ -f "$DATA/dataset.json" ] || p2phd prep "$ADE20K" "$DATA" --layout ade20k --width 256
"${train[@]}" train-global "$DATA" --run-dir "$RUNS/ade20k_256" "${vgg[@]}" \
  --epochs 100 --decay-epochs 100
p2phd synthesize "$RUNS/ade20k_256" "$DATA/test/label" --out "results/ade20k_256"
