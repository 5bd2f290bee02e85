"""ADE20K scene parsing (Zhou et al. 2017) as its zip unpacks: `ADEChallengeData2016/` (or
that folder itself) with `images/{training,validation}/*.jpg` and
`annotations/{training,validation}/*.png`; `training` becomes `train`, `validation` `test`.
No instance maps. 151 classes: its 0 ("other objects / unlabeled") is kept as class 0, not
scored; 1..150 are scored as the 150 classes ADE20K segmenters predict.
"""

from __future__ import annotations

from pathlib import Path

from p2phd.config import PrepConfig
from p2phd.data.pairing import Source, folder_roles, pair_all
from p2phd.datasets import KnownDataset

# ADE20K scene parsing (ADEChallengeData2016, objectInfo150.txt's short names) with its id 0,
# "other objects / unlabeled", kept as class 0: label_nc 151. The one rule for unlabeled ids:
# unlabeled is class 0 (Cityscapes', ADE20K's, COCO-Stuff's 255 read as 0), a class of its own
# (pix2pixHD trains on Cityscapes' 0 "unlabeled" the same way), named "unlabeled" in every
# message and legend, left out of segmentation scores, and `dataset.json` records it.
CLASSES = ("unlabeled",) + tuple(
    "wall|building|sky|floor|tree|ceiling|road|bed|windowpane|grass|cabinet|sidewalk|person|"
    "earth|door|table|mountain|plant|curtain|chair|car|water|painting|sofa|shelf|house|sea|"
    "mirror|rug|field|armchair|seat|fence|desk|rock|wardrobe|lamp|bathtub|railing|cushion|"
    "base|box|column|signboard|chest of drawers|counter|sand|sink|skyscraper|fireplace|"
    "refrigerator|grandstand|path|stairs|runway|case|pool table|pillow|screen door|stairway|"
    "river|bridge|bookcase|blind|coffee table|toilet|flower|book|hill|bench|countertop|stove|"
    "palm|kitchen island|computer|swivel chair|boat|bar|arcade machine|hovel|bus|towel|light|"
    "truck|tower|chandelier|awning|streetlight|booth|television receiver|airplane|dirt track|"
    "apparel|pole|land|bannister|escalator|ottoman|bottle|buffet|poster|stage|van|ship|"
    "fountain|conveyer belt|canopy|washer|plaything|swimming pool|stool|barrel|basket|"
    "waterfall|tent|bag|minibike|cradle|oven|ball|food|step|tank|trade name|microwave|pot|"
    "animal|bicycle|lake|dishwasher|screen|blanket|sculpture|hood|sconce|vase|traffic light|"
    "tray|ashcan|fan|pier|crt screen|plate|monitor|bulletin board|shower|radiator|glass|clock|"
    "flag".split("|")
)
SPLITS = {"train": "training", "test": "validation"}  # ours -> ADE20K
FOLDERS = "ADE20K (ADEChallengeData2016/ with images/ and annotations/)"


def _root(src: Path) -> Path:
    """`ADEChallengeData2016/` inside `src`, or `src` itself."""
    inner = src / "ADEChallengeData2016"
    return inner if inner.is_dir() else src


def _detect(src: Path) -> bool:
    root = _root(src)
    return (root / "images").is_dir() and any(
        (root / "annotations" / split).is_dir() for split in SPLITS.values()
    )


def _discover(src: Path, cfg: PrepConfig) -> Source:
    root = _root(src)
    folders = {s: (root / "annotations" / a, root / "images" / a) for s, a in SPLITS.items()}
    roles = folder_roles(folders, f"{root / 'annotations'}: has no training/ or validation/")
    return pair_all(src, "ade20k", "labels", roles)


DATASET = KnownDataset(
    name="ade20k",
    classes=CLASSES,
    summary="ADE20K's 150 classes and 0 unlabeled",
    unlabeled=0,
    label_table={label: label - 1 for label in range(1, 151)},
    folders=FOLDERS,
    detect=_detect,
    discover=_discover,
)
