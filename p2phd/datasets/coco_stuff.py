"""COCO-Stuff 2017 (Caesar et al. 2018) as it unpacks: `train2017/*.jpg`, `val2017/*.jpg`
beside `stuffthingmaps_trainval2017/{train2017,val2017}/*.png`, or `images/` and
`annotations/` each holding `train2017/` and `val2017/` as its README unzips them;
`val2017` becomes `test`. Class ids are its labels.txt's: 0 unlabeled, 1..182 (so a thing's
id is its COCO category id; label_nc 183). Instance maps are drawn from COCO's instance
annotations when `--coco-instances` gives them (`data/coco.py`), objects numbered
`class * 256 + k`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from p2phd.config import PrepConfig
from p2phd.data import coco
from p2phd.data.pairing import Bad, Item, Source, folder_roles, pair_all
from p2phd.data.sources import read_files
from p2phd.datasets import KnownDataset
from p2phd.errors import DatasetError

# COCO-Stuff 2017 in its labels.txt numbering: 0 unlabeled, things 1-91 (COCO's category ids,
# with its 11 unused ones), stuff 92-182; label_nc 183. (Its stuffthingmaps PNGs store
# id - 1, and 255 for unlabeled: see `class_ids`.)
CLASSES = tuple(
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
SPLITS = {"train": "train2017", "test": "val2017"}  # ours -> COCO
MAPS = "stuffthingmaps_trainval2017"
FILE_UNLABELED = 255  # the stuffthingmaps' value for unlabeled (class 0)
FOLDERS = (
    "COCO-Stuff (train2017/ and val2017/ beside stuffthingmaps_trainval2017/{train2017,"
    "val2017}/, or images/ and annotations/ each holding train2017/ and val2017/)"
)


def _detect(src: Path) -> bool:
    return _coco_folders(src) is not None


def _coco_readme(root: Path) -> bool:
    """`annotations/` holds COCO-Stuff's split folders (its README's layout, which has an
    `images/` and an `annotations/` as ADE20K's does)."""
    return any((root / "annotations" / c).is_dir() for c in SPLITS.values())


def _coco_folders(src: Path) -> tuple[Path, Path] | None:
    """COCO-Stuff's (label maps, photos) folders, each holding train2017/ and val2017/:
    `stuffthingmaps_trainval2017/` beside COCO's own folders, or `annotations/` and `images/`
    as COCO-Stuff's README unzips them; None when `src` has neither."""
    if (src / MAPS).is_dir():
        return src / MAPS, src
    if _coco_readme(src):
        return src / "annotations", src / "images"
    return None


def _discover(src: Path, cfg: PrepConfig) -> Source:
    """COCO-Stuff's label maps and photos, each item with its objects when annotation files
    are given (an image none of them lists is a bad item)."""
    found = _coco_folders(src)
    assert found is not None  # discover comes here only for a source in this layout
    maps, photos = found
    folders = {s: (maps / c, photos / c) for s, c in SPLITS.items()}
    roles = folder_roles(folders, f"{maps}: has no train2017/ or val2017/; expected {FOLDERS}")
    instance_files = cfg.coco_instances
    instances = coco.load_instances(instance_files) if instance_files else None

    def item(split: str, key: str, files: dict[str, Path]) -> Item | Bad:
        if instances is None:
            return Item(split, key, files, reader="coco-stuff")
        if key not in instances:
            return Bad(
                split,
                key,
                f"{files['label']}: image {key} is in none of the --coco-instances files "
                f"({', '.join(instance_files)}); pass its split's "
                f"annotations/instances_{SPLITS[split]}.json too",
            )
        return Item(split, key, files, reader="coco-stuff", extra=instances[key])

    source = pair_all(src, "coco-stuff", "labels", roles, item)
    instance = instances is not None
    return dataclasses.replace(source, instance=instance, class_divisor=coco.COCO_DIVISOR)


def class_ids(path: Path, values: np.ndarray) -> np.ndarray:
    """A stuffthingmaps PNG's values as class ids (value + 1, 255 -> 0 unlabeled); values
    that are no COCO-Stuff id are refused."""
    count = len(CLASSES) - 1
    stray = values[(values >= count) & (values != FILE_UNLABELED)]
    if stray.size:
        raise DatasetError(
            f"{path}: label value {int(stray[0])} is not a COCO-Stuff id (0..{count - 1}, or "
            f"{FILE_UNLABELED} for unlabeled); fix the map"
        )
    return np.where(values == FILE_UNLABELED, 0, values + 1)


def _read_item(item: Item, label_nc: int | None) -> dict[str, np.ndarray]:
    """The label map's values as class ids, and its objects drawn as the instance map."""
    objects = item.extra if isinstance(item.extra, coco.ImageObjects) else None

    def draw(label: np.ndarray, path: Path) -> np.ndarray | None:
        return coco.instance_map(label, objects, path) if objects is not None else None

    return read_files(item, label_nc, class_ids, draw)


DATASET = KnownDataset(
    name="coco-stuff",
    classes=CLASSES,
    summary="COCO-Stuff's 182 classes and 0 unlabeled",
    unlabeled=0,
    class_divisor=coco.COCO_DIVISOR,
    label_table={label: label - 1 for label in range(1, 183)},
    folders=FOLDERS,
    detect=_detect,
    discover=_discover,
    read_item=_read_item,
)
