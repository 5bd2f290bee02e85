#!/usr/bin/env bash
# COCO-Stuff 2017 (182 classes and 0 unlabeled, in its labels.txt numbering), paper-style: G1
# (ngf 64, 4 downsamplings, 9 blocks) with a 2-scale D, LSGAN + feature matching + VGG, Adam
# 2e-4, batch 1, at 256 pixels wide (the size later papers compare pix2pixHD at on
# COCO-Stuff); 100 epochs + 100 of linear decay. With instance boundaries drawn from COCO's
# instance annotations when annotations/ holds them (needs `pip install 'p2phd[coco]'`),
# else without instance maps (--no-instance, then the dataset's default).
#
#   COCO=~/datasets/coco bash examples/coco_stuff.sh
#
# COCO holds COCO's train2017/ and val2017/ with stuffthingmaps_trainval2017/{train2017,val2017}/
# (unzip stuffthingmaps_trainval2017.zip -d stuffthingmaps_trainval2017), or images/ and
# annotations/ each holding train2017/ and val2017/ as COCO-Stuff's README unzips them; and,
# for instance maps, annotations/instances_{train,val}2017.json (annotations_trainval2017.zip).
set -euo pipefail
: "${COCO:?set COCO to the folder holding train2017/, val2017/, stuffthingmaps_trainval2017/}"
# VGG (optional): a local vgg19-dcbb9e9d.pth; unset, the cached one (fetched once if missing)
vgg=()
if [ -n "${VGG:-}" ]; then vgg=(--vgg-weights "$VGG"); else p2phd weights fetch vgg19 --quiet; fi
DATA=${DATA:-data/coco_stuff}
RUNS=${RUNS:-runs}
read -r -a train <<< "${P2PHD:-p2phd}"

instances=()
for split in train2017 val2017; do
  file="$COCO/annotations/instances_$split.json"
  if [ -f "$file" ]; then instances+=(--coco-instances "$file"); fi
done
[ -f "$DATA/dataset.json" ] \
  || p2phd prep "$COCO" "$DATA" --layout coco-stuff --width 256 ${instances[@]+"${instances[@]}"}
"${train[@]}" train-global "$DATA" --run-dir "$RUNS/coco_stuff_256" "${vgg[@]}" \
  --epochs 100 --decay-epochs 100
inst=()
if [ -d "$DATA/test/inst" ]; then inst=(--inst "$DATA/test/inst"); fi
p2phd synthesize "$RUNS/coco_stuff_256" "$DATA/test/label" ${inst[@]+"${inst[@]}"} \
  --out "results/coco_stuff_256"
