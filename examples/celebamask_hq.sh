#!/usr/bin/env bash
# CelebAMask-HQ faces (18 part masks merged into 19 classes, no instance maps), paper-style:
# G1 (ngf 64, 4 downsamplings, 9 blocks) with a 2-scale D, LSGAN + feature matching + VGG,
# Adam 2e-4, batch 1, at the masks' 512x512; 50 epochs + 50 of linear decay over the 30,000
# faces (later face papers train about as long).
#
#   CELEBAMASK=~/datasets/CelebAMask-HQ \
#     bash examples/celebamask_hq.sh
#
# CELEBAMASK is the folder the official zip unpacks (CelebA-HQ-img/, CelebAMask-HQ-mask-anno/,
# CelebA-HQ-to-CelebA-mapping.txt, which gives CelebA's own train/test split).
set -euo pipefail
: "${CELEBAMASK:?set CELEBAMASK to the unpacked CelebAMask-HQ folder}"
# VGG (optional): a local vgg19-dcbb9e9d.pth; unset, the cached one (fetched once if missing)
vgg=()
if [ -n "${VGG:-}" ]; then vgg=(--vgg-weights "$VGG"); else p2phd weights fetch vgg19 --quiet; fi
DATA=${DATA:-data/celebamask_hq}
RUNS=${RUNS:-runs}
read -r -a train <<< "${P2PHD:-p2phd}"

[ -f "$DATA/dataset.json" ] || p2phd prep "$CELEBAMASK" "$DATA" --layout celebamask-hq
"${train[@]}" train-global "$DATA" --run-dir "$RUNS/celebamask_512" "${vgg[@]}" \
  --epochs 50 --decay-epochs 50
p2phd synthesize "$RUNS/celebamask_512" "$DATA/test/label" --out "results/celebamask_512"
