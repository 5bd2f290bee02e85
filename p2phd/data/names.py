"""Names people use: the key that pairs a label map with its instance map and photo, and the
names of the classes.

One key rule everywhere (prep, synthesize's --inst and --style-from): the key of a file is
its stem without the suffixes datasets put on their file names (Cityscapes'
`_gtFine_labelIds`, `_gtFine_instanceIds`, `_leftImg8bit` and their kin), so
`aachen_000000_000019_gtFine_labelIds.png` and `aachen_000000_000019_leftImg8bit.png` pair
in any folder layout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from p2phd.errors import ConfigError, DatasetError

# Longest first, so "_gtFine_labelIds" goes before "_labelIds" is tried.
KEY_SUFFIXES = tuple(
    "_gtFine_labelTrainIds _gtCoarse_labelTrainIds _gtFine_instanceIds _gtCoarse_instanceIds "
    "_gtFine_labelIds _gtCoarse_labelIds _labelTrainIds _instanceIds _leftImg8bit _labelIds".split()
)
KEY_RULE = (
    "files pair by key: the file name without its extension and without a suffix such as "
    "_gtFine_labelIds, _gtFine_instanceIds or _leftImg8bit"
)

# Cityscapes labelIds 0..33 (cityscapesScripts' names); 34 is unused (pix2pixHD's label_nc 35).
CITYSCAPES_CLASSES = tuple(
    "unlabeled|ego vehicle|rectification border|out of roi|static|dynamic|ground|road|sidewalk|"
    "parking|rail track|building|wall|fence|guard rail|bridge|tunnel|pole|polegroup|"
    "traffic light|traffic sign|vegetation|terrain|sky|person|rider|car|truck|bus|caravan|"
    "trailer|train|motorcycle|bicycle|unused".split("|")
)
CITYSCAPES_LABEL_NC = len(CITYSCAPES_CLASSES)

# ADE20K scene parsing (ADEChallengeData2016, objectInfo150.txt's short names) with its id 0,
# "other objects / unlabeled", kept as class 0: label_nc 151. The one rule for unlabeled ids:
# unlabeled is class 0 (Cityscapes', ADE20K's, COCO-Stuff's 255 read as 0), a class of its own
# (pix2pixHD trains on Cityscapes' 0 "unlabeled" the same way), named "unlabeled" in every
# message and legend, left out of segmentation scores, and `dataset.json` records it.
ADE20K_CLASSES = ("unlabeled",) + tuple(
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
# COCO-Stuff 2017 in its labels.txt numbering: 0 unlabeled, things 1-91 (COCO's category ids,
# with its 11 unused ones), stuff 92-182; label_nc 183. (Its stuffthingmaps PNGs store
# id - 1, and 255 for unlabeled: see `data/coco.py`.)
COCO_STUFF_CLASSES = tuple(
    "unlabeled|person|bicycle|car|motorcycle|airplane|bus|train|truck|boat|traffic light|"
    "fire hydrant|street sign|stop sign|parking meter|bench|bird|cat|dog|horse|sheep|cow|"
    "elephant|bear|zebra|giraffe|hat|backpack|umbrella|shoe|eye glasses|handbag|tie|suitcase|"
    "frisbee|skis|snowboard|sports ball|kite|baseball bat|baseball glove|skateboard|"
    "surfboard|tennis racket|bottle|plate|wine glass|cup|fork|knife|spoon|bowl|banana|apple|"
    "sandwich|orange|broccoli|carrot|hot dog|pizza|donut|cake|chair|couch|potted plant|bed|"
    "mirror|dining table|window|desk|toilet|door|tv|laptop|mouse|remote|keyboard|cell phone|"
    "microwave|oven|toaster|sink|refrigerator|blender|book|clock|vase|scissors|teddy bear|"
    "hair drier|toothbrush|hair brush|banner|blanket|branch|bridge|building-other|bush|"
    "cabinet|cage|cardboard|carpet|ceiling-other|ceiling-tile|cloth|clothes|clouds|counter|"
    "cupboard|curtain|desk-stuff|dirt|door-stuff|fence|floor-marble|floor-other|floor-stone|"
    "floor-tile|floor-wood|flower|fog|food-other|fruit|furniture-other|grass|gravel|"
    "ground-other|hill|house|leaves|light|mat|metal|mirror-stuff|moss|mountain|mud|napkin|"
    "net|paper|pavement|pillow|plant-other|plastic|platform|playingfield|railing|railroad|"
    "river|road|rock|roof|rug|salad|sand|sea|shelf|sky-other|skyscraper|snow|solid-other|"
    "stairs|stone|straw|structural-other|table|tent|textile-other|towel|tree|vegetable|"
    "wall-brick|wall-concrete|wall-other|wall-panel|wall-stone|wall-tile|wall-wood|"
    "water-other|waterdrops|window-blind|window-other|wood".split("|")
)
UNLABELED = {"cityscapes": 0, "ade20k": 0, "coco-stuff": 0}  # dataset -> its unlabeled id

# CelebAMask-HQ's 18 part masks in the order of the dataset's own merge tool
# (face_parsing/Data_preprocessing/g_mask.py): part i is class i + 1 and is drawn over the
# parts before it; class 0 is the background (no part).
CELEBAMASK_PARTS = tuple(
    "skin l_brow r_brow l_eye r_eye eye_g l_ear r_ear ear_r nose mouth u_lip l_lip neck "
    "neck_l cloth hair hat".split()
)
CELEBAMASK_CLASSES = ("background", *CELEBAMASK_PARTS)


def name_key(name: str) -> str:
    """The pairing key of a file name or relative path (`a/b_leftImg8bit.png` -> `a/b`)."""
    stem = Path(name).with_suffix("").as_posix()
    for suffix in KEY_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def is_cityscapes_name(name: str) -> bool:
    """A Cityscapes label or instance file name (`*_gtFine_labelIds.png` and kin)."""
    stem = Path(name).stem
    return any(stem.endswith(s) for s in KEY_SUFFIXES if s.startswith(("_gtFine", "_gtCoarse")))


def read_class_names(path: Path) -> tuple[str, ...]:
    """Class names from a JSON list of strings, or from a text file with one name a line."""
    try:
        text = Path(path).read_text()
    except (OSError, ValueError) as exc:
        raise DatasetError(f"--class-names {path}: unreadable ({exc})") from None
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"--class-names {path}: not a JSON list ({exc})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DatasetError(f"--class-names {path}: a JSON list must hold strings only")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    return check_class_names(names, f"--class-names {path}")


def check_class_names(names: Sequence[str], where: str) -> tuple[str, ...]:
    """Names are non-empty, distinct, and not plain numbers (a number means a class id)."""
    if not names:
        raise DatasetError(f"{where}: no class names")
    for name in names:
        if not name.strip() or name.strip().isdigit() or ":" in name:
            raise DatasetError(
                f"{where}: {name!r} cannot be a class name (empty, a number, or with ':'); "
                "rename it"
            )
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen and name != "unused":
            raise DatasetError(f"{where}: {name!r} names two classes; make the names distinct")
        seen.add(name.lower())
    return tuple(n.strip() for n in names)


def class_id(text: str, names: Sequence[str], label_nc: int, option: str) -> int:
    """A class given on the command line by number (`26`) or name (`car`, any case)."""
    text = text.strip()
    if text.isdigit():
        value = int(text)
    else:
        lowered = [n.lower() for n in names]
        if text.lower() not in lowered:
            known = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            hint = f"one of {known}" if names else "a class id (this run has no class names)"
            raise ConfigError(f"{option}: unknown class {text!r}; use {hint} or a number")
        value = lowered.index(text.lower())
    if value >= max(label_nc, 1):
        raise ConfigError(
            f"{option}: class {value} is unknown: this run has {label_nc} classes "
            f"(0..{label_nc - 1})"
        )
    return value


def class_name(index: int, names: Sequence[str]) -> str:
    """`car` for 26 with names, else `class 26`."""
    return names[index] if 0 <= index < len(names) else f"class {index}"
