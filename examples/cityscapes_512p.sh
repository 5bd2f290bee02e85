#!/usr/bin/env bash
# The paper's 512p recipe (NVIDIA/pix2pixHD scripts/train_512p.sh and test_512p.sh):
# G1 (ngf 64, 4 downsamplings, 9 blocks) at 1024x512 with a 2-scale D, LSGAN + feature
# matching + VGG (weight 10), Adam 2e-4, 100 epochs + 100 epochs of linear decay, batch 1.
#
#   CITYSCAPES=~/datasets/cityscapes \
#     bash examples/cityscapes_512p.sh
#
# CITYSCAPES holds the raw download (gtFine/, leftImg8bit/). Several GPUs on one node:
#   P2PHD="torchrun --nproc-per-node 8 --no-python p2phd" ... bash examples/cityscapes_512p.sh
# (--batch-size is per process, so 8 GPUs x 1 is the reference's multi-GPU batch of 8).
set -euo pipefail
: "${CITYSCAPES:?set CITYSCAPES to the raw Cityscapes folder (gtFine/, leftImg8bit/)}"
# VGG (optional): a local vgg19-dcbb9e9d.pth; unset, the cached one (fetched once if missing)
vgg=()
if [ -n "${VGG:-}" ]; then vgg=(--vgg-weights "$VGG"); else p2phd weights fetch vgg19 --quiet; fi
DATA=${DATA:-data/cityscapes}   # prepped once at 2048x1024; the 1024p recipe reuses it
RUNS=${RUNS:-runs}
read -r -a train <<< "${P2PHD:-p2phd}"

[ -f "$DATA/dataset.json" ] || p2phd prep "$CITYSCAPES" "$DATA" --label-nc 35 --width 2048 \
  --workers "$(nproc)"
"${train[@]}" train-global "$DATA" --run-dir "$RUNS/label2city_512p" --load-width 1024 \
  "${vgg[@]}"
p2phd synthesize "$RUNS/label2city_512p" "$DATA/test/label" --inst "$DATA/test/inst" \
  --width 1024 --out "results/label2city_512p"
