"""Cityscapes (Cordts et al. 2016), pix2pixHD's own dataset: its 35 labelIds (34 named,
and 34 "unused", the reference's label_nc 35), its colours, its 19 trainIds for scoring,
and its download as it unpacks: `gtFine/<split>/<city>/<key>_gtFine_{labelIds,
instanceIds}.png` with `leftImg8bit/<split>/<city>/<key>_leftImg8bit.png`. Its `train` is
our `train`, its `val` our `test` (the `test` split's labels are dummies: ignored). Its file
names are recognised in any layout, as the reference's own sample folder keeps them.
"""

from __future__ import annotations

from pathlib import Path

from p2phd.config import PrepConfig
from p2phd.data.names import KEY_SUFFIXES
from p2phd.data.pairing import Role, Source, pair_all
from p2phd.datasets import KnownDataset
from p2phd.errors import DatasetError

# Cityscapes labelIds 0..33 (cityscapesScripts' names); 34 is unused (pix2pixHD's label_nc 35).
CLASSES = tuple(
    "unlabeled|ego vehicle|rectification border|out of roi|static|dynamic|ground|road|sidewalk|"
    "parking|rail track|building|wall|fence|guard rail|bridge|tunnel|pole|polegroup|"
    "traffic light|traffic sign|vegetation|terrain|sky|person|rider|car|truck|bus|caravan|"
    "trailer|train|motorcycle|bicycle|unused".split("|")
)

# cityscapesScripts' colours of the labelIds
COLOURS = (
    (0, 0, 0),
    (0, 0, 0),
    (0, 0, 0),
    (0, 0, 0),
    (0, 0, 0),
    (111, 74, 0),
    (81, 0, 81),
    (128, 64, 128),
    (244, 35, 232),
    (250, 170, 160),
    (230, 150, 140),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (180, 165, 180),
    (150, 100, 100),
    (150, 120, 90),
    (153, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 0, 90),
    (0, 0, 110),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
    (0, 0, 142),
)

# Cityscapes labelIds -> trainIds (cityscapesScripts' table); every other id is ignored.
TRAIN_IDS = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}

SPLITS = {"train": "train", "test": "val"}  # ours -> Cityscapes
SUFFIX = {
    "label": "_gtFine_labelIds.png",
    "inst": "_gtFine_instanceIds.png",
    "img": "_leftImg8bit.png",
}
FOLDERS = "raw Cityscapes (gtFine/, leftImg8bit/)"


def is_cityscapes_name(name: str) -> bool:
    """A Cityscapes label or instance file name (`*_gtFine_labelIds.png` and kin)."""
    stem = Path(name).stem
    return any(stem.endswith(s) for s in KEY_SUFFIXES if s.startswith(("_gtFine", "_gtCoarse")))


def _detect(src: Path) -> bool:
    return (src / "gtFine").is_dir()


def _discover(src: Path, cfg: PrepConfig) -> Source:
    return pair_all(src, "cityscapes", "labels", _roles(src))


def _roles(src: Path) -> dict[str, list[Role]]:
    """Split -> roles: labelIds, instanceIds (when any exist), leftImg8bit (required for train)."""
    roles: dict[str, list[Role]] = {}
    for split, city_split in SPLITS.items():
        gt = src / "gtFine" / city_split
        if not gt.is_dir():
            continue
        photos = src / "leftImg8bit" / city_split
        roles[split] = [Role("label", gt, SUFFIX["label"])]
        if any(gt.rglob(f"*{SUFFIX['inst']}")):
            roles[split].append(Role("inst", gt, SUFFIX["inst"]))
        if photos.is_dir():
            roles[split].append(Role("img", photos, SUFFIX["img"]))
        elif split == "train":
            raise DatasetError(f"{photos}/ is missing; training needs the leftImg8bit photos")
    if not roles:
        raise DatasetError(f"{src / 'gtFine'}: has no train/ or val/ folder; expected {FOLDERS}")
    with_inst = [s for s, rs in roles.items() if any(r.role == "inst" for r in rs)]
    if with_inst and len(with_inst) != len(roles):
        missing = next(s for s in roles if s not in with_inst)
        raise DatasetError(
            f"{src / 'gtFine' / SPLITS[missing]}: has no *_gtFine_instanceIds.png "
            f"while gtFine/{SPLITS[with_inst[0]]} has; add them or remove those"
        )
    return roles


def _recognise(source: Source) -> tuple[str, ...] | None:
    """Cityscapes' file names in the reference layout (its own sample folder keeps them)."""
    splits = source.splits.values()
    labels = [i.files["label"].name for s in splits for i in s.items if "label" in i.files]
    return CLASSES if labels and all(map(is_cityscapes_name, labels)) else None


DATASET = KnownDataset(
    name="cityscapes",
    classes=CLASSES,
    summary="Cityscapes' classes",
    unlabeled=0,
    label_table=TRAIN_IDS,
    colours=COLOURS,
    folders=FOLDERS,
    detect=_detect,
    discover=_discover,
    recognise=_recognise,
)
