#!/usr/bin/env bash
# The paper's 1024p recipe (NVIDIA/pix2pixHD scripts/train_1024p_24G.sh, test_1024p.sh):
# after examples/cityscapes_512p.sh, the local enhancer (ngf 32, 1 enhancer, 3 blocks) at
# 2048x1024 with a 3-scale D; G1 frozen for 10 epochs (the reference's niter_fix_global),
# then G1 + G2 together; 50 epochs + 50 epochs of decay in all.
#
#   CITYSCAPES=~/datasets/cityscapes \
#     bash examples/cityscapes_1024p.sh
#
# --activation-checkpointing trades compute for memory (for cards with less memory).
# Several GPUs on one node: P2PHD="torchrun --nproc-per-node 8 --no-python p2phd"; several nodes:
#   P2PHD="torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \
#          --rdzv-endpoint HOST:29500 --rdzv-id label2city --no-python p2phd"   (on every node)
set -euo pipefail
: "${CITYSCAPES:?set CITYSCAPES to the raw Cityscapes folder (gtFine/, leftImg8bit/)}"
# VGG (optional): a local vgg19-dcbb9e9d.pth; unset, the cached one (fetched once if missing)
vgg=()
if [ -n "${VGG:-}" ]; then vgg=(--vgg-weights "$VGG"); else p2phd weights fetch vgg19 --quiet; fi
DATA=${DATA:-data/cityscapes}
RUNS=${RUNS:-runs}
read -r -a train <<< "${P2PHD:-p2phd}"

[ -f "$RUNS/label2city_512p/checkpoints/LATEST" ] || bash "$(dirname "$0")/cityscapes_512p.sh"
"${train[@]}" train-local "$DATA" --run-dir "$RUNS/label2city_1024p" \
  --global "$RUNS/label2city_512p" --epochs 50 --decay-epochs 50 --fix-global-epochs 10 \
  "${vgg[@]}"
"${train[@]}" train-joint "$DATA" --run-dir "$RUNS/label2city_1024p"
p2phd synthesize "$RUNS/label2city_1024p" "$DATA/test/label" --inst "$DATA/test/inst" \
  --out "results/label2city_1024p"
