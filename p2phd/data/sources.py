"""The source side of `p2phd prep`: recognise the layout, find its files (paired by key in
`pairing.py`), then read and check one item. These layouts are understood:

* the reference layout (NVIDIA/pix2pixHD `datasets/`): `{train,test}_label/`, `_inst/`,
  `_img/`, or `{train,test}_A/` and `_B/` for RGB-input datasets (`--label-nc 0`); the key of
  a file is its path below the folder without the suffix, so nested folders pair too;
* raw Cityscapes: `gtFine/<split>/<city>/<key>_gtFine_{labelIds,instanceIds}.png` and
  `leftImg8bit/<split>/<city>/<key>_leftImg8bit.png`. Cityscapes `train` becomes our `train`
  and `val` our `test` (the `test` split's labels are dummies, so it is ignored);
* ADE20K scene parsing as its zip unpacks (`ADEChallengeData2016/`, or that folder itself):
  `images/{training,validation}/*.jpg` with `annotations/{training,validation}/*.png`
  (`training` becomes `train`, `validation` `test`); no instance maps; 151 classes, its 0
  ("unlabeled") kept as class 0 (`names.UNLABELED`);
* CelebAMask-HQ as its zip unpacks (`CelebAMask-HQ/`): `CelebA-HQ-img/<id>.jpg` with the
  part masks `CelebAMask-HQ-mask-anno/<group>/<id:05d>_<part>.png`, merged into one label
  map of 19 classes (`names.CELEBAMASK_PARTS`, later parts over earlier ones); the photos
  (1024x1024) are read at the masks' size (512x512); no instance maps. The split: CelebA's
  own (test from CelebA image 162771 on) through `CelebA-HQ-to-CelebA-mapping.txt` when it
  is there, else every tenth face by a hash of its id;
* COCO-Stuff 2017: `train2017/*.jpg`, `val2017/*.jpg` with
  `stuffthingmaps_trainval2017/{train2017,val2017}/*.png` (`val2017` becomes `test`); class
  ids in its labels.txt numbering, 0 unlabeled and 1..182 (label_nc 183); instance maps drawn
  from COCO's instance annotations when they are given (`data/coco.py`).

`--layout auto` recognises each by its folders; a folder that looks like two is refused.

`read_item` decodes one item and checks what the reference only meets as a CUDA assert or a
silent error (ids out of range, colour-coded labels, sizes that differ).
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np

from p2phd.data import coco, io
from p2phd.data.io import IMAGE_SUFFIXES
from p2phd.data.names import (
    ADE20K_CLASSES,
    CELEBAMASK_CLASSES,
    CELEBAMASK_PARTS,
    CITYSCAPES_CLASSES,
    COCO_STUFF_CLASSES,
    check_class_names,
    is_cityscapes_name,
)
from p2phd.data.pairing import NOUN, SPLITS, Bad, Item, Role, Source, Split, pair_all
from p2phd.errors import DatasetError

CITYSCAPES_SPLITS = {"train": "train", "test": "val"}  # ours -> Cityscapes
_CITY_SUFFIX = {
    "label": "_gtFine_labelIds.png",
    "inst": "_gtFine_instanceIds.png",
    "img": "_leftImg8bit.png",
}
ADE20K_SPLITS = {"train": "training", "test": "validation"}  # ours -> ADE20K
COCO_SPLITS = {"train": "train2017", "test": "val2017"}  # ours -> COCO
_COCO_MAPS = "stuffthingmaps_trainval2017"
CELEBA_TEST_FROM = 162770  # 0-based CelebA index where its val and test partitions begin
_CELEBA = ("CelebA-HQ-img", "CelebAMask-HQ-mask-anno")
_EXPECTED = (
    "expected the reference layout (train_label/, train_inst/, train_img/, test_label/, ...; "
    "or train_A/, train_B/, ... for --label-nc 0), raw Cityscapes (gtFine/, leftImg8bit/), "
    "ADE20K (ADEChallengeData2016/ with images/ and annotations/), CelebAMask-HQ "
    "(CelebA-HQ-img/, CelebAMask-HQ-mask-anno/) or COCO-Stuff (train2017/ and val2017/ beside "
    "stuffthingmaps_trainval2017/{train2017,val2017}/, or images/ and annotations/ each "
    "holding train2017/ and val2017/)"
)


def discover(
    src: Path, label_nc: int | None, layout: str = "auto", coco_instances: tuple[str, ...] = ()
) -> Source:
    """Detect (or take) the layout of `src`, then list and pair its files per split
    (`coco_instances`: COCO instance annotation files, for the coco-stuff layout)."""
    if not src.is_dir():
        raise DatasetError(f"{src}: source folder not found; {_EXPECTED}")
    found = detect_layouts(src)
    if layout == "auto":
        if len(found) > 1:
            raise DatasetError(
                f"{src}: looks like {' and like '.join(found)}; keep one layout per source "
                f"folder, or pass --layout {found[0]}"
            )
        if not found:
            what = "empty folder" if not any(src.iterdir()) else "not a dataset source"
            raise DatasetError(f"{src}: {what}; {_EXPECTED}")
        layout = found[0]
    elif layout not in found:
        raise DatasetError(f"{src}: not in the {layout} layout; {_EXPECTED}")
    if layout != "reference" and label_nc == 0:
        raise DatasetError(f"{src}: {layout} has label maps; drop --label-nc 0")
    if coco_instances and layout != "coco-stuff":
        raise DatasetError(
            f"--coco-instances: {src} is in the {layout} layout; COCO's instance annotations "
            "go with COCO-Stuff's label maps (--layout coco-stuff)"
        )
    if layout == "cityscapes":
        source = pair_all(src, "cityscapes", "labels", _cityscapes_roles(src))
    elif layout == "ade20k":
        source = pair_all(src, "ade20k", "labels", _ade20k_roles(_ade20k_root(src)))
    elif layout == "celebamask-hq":
        source = _celebamask(src)
    elif layout == "coco-stuff":
        source = _coco_stuff(src, coco_instances)
    else:
        kind = _reference_kind(src, label_nc)
        source = pair_all(src, "reference", kind, _reference_roles(src, kind))
    return _identify(source)


def detect_layouts(src: Path) -> list[str]:
    """The layouts whose folders `src` holds (more than one is an error for `auto`)."""
    found = []
    if any(p.is_dir() and _reference_dir(p.name) for p in src.iterdir()):
        found.append("reference")
    if (src / "gtFine").is_dir():
        found.append("cityscapes")
    ade = _ade20k_root(src)
    if (ade / "images").is_dir() and (ade / "annotations").is_dir() and not _coco_readme(ade):
        found.append("ade20k")
    if all((src / folder).is_dir() for folder in _CELEBA):
        found.append("celebamask-hq")
    if _coco_folders(src) is not None:
        found.append("coco-stuff")
    return found


def _coco_readme(root: Path) -> bool:
    """`annotations/` holds COCO-Stuff's split folders (its README's layout, which has an
    `images/` and an `annotations/` as ADE20K's does)."""
    return any((root / "annotations" / c).is_dir() for c in COCO_SPLITS.values())


def _coco_folders(src: Path) -> tuple[Path, Path] | None:
    """COCO-Stuff's (label maps, photos) folders, each holding train2017/ and val2017/:
    `stuffthingmaps_trainval2017/` beside COCO's own folders, or `annotations/` and `images/`
    as COCO-Stuff's README unzips them; None when `src` has neither."""
    if (src / _COCO_MAPS).is_dir():
        return src / _COCO_MAPS, src
    if _coco_readme(src):
        return src / "annotations", src / "images"
    return None


def _coco_stuff(src: Path, instance_files: tuple[str, ...]) -> Source:
    """COCO-Stuff's label maps and photos, each item with its objects when annotation files
    are given (an image none of them lists is a bad item)."""
    found = _coco_folders(src)
    assert found is not None  # discover comes here only for a source in this layout
    maps, photos = found
    folders = {s: (maps / c, photos / c) for s, c in COCO_SPLITS.items()}
    roles = _folder_roles(folders, f"{maps}: has no train2017/ or val2017/")
    instances = coco.load_instances(instance_files) if instance_files else None

    def item(split: str, key: str, files: dict[str, Path]) -> Item | Bad:
        if instances is None:
            return Item(split, key, files, coco_values=True)
        if key not in instances:
            return Bad(
                split,
                key,
                f"{files['label']}: image {key} is in none of the --coco-instances files "
                f"({', '.join(instance_files)}); pass its split's "
                f"annotations/instances_{COCO_SPLITS[split]}.json too",
            )
        return Item(split, key, files, coco_values=True, objects=instances[key])

    source = pair_all(src, "coco-stuff", "labels", roles, item)
    instance = instances is not None
    return dataclasses.replace(source, instance=instance, class_divisor=coco.COCO_DIVISOR)


def _celebamask(src: Path) -> Source:
    """Faces by id: the photo and every part mask of that id; a face lacking either is bad."""
    photos_dir, masks_dir = (src / folder for folder in _CELEBA)
    photos: dict[str, Path] = {}
    for path in sorted(photos_dir.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.stem.isdigit():
            photos[str(int(path.stem))] = path
    parts: dict[str, dict[str, Path]] = {}
    for path in sorted(masks_dir.glob("*/*.png")):
        ident, _, part = path.stem.partition("_")
        if ident.isdigit() and part in CELEBAMASK_PARTS:
            parts.setdefault(str(int(ident)), {})[f"part:{part}"] = path
    if not photos and not parts:
        raise DatasetError(f"{src}: no faces in {photos_dir}/ or {masks_dir}/; {_EXPECTED}")
    test = _celeba_test_ids(src, sorted(set(photos) | set(parts), key=int))
    items: dict[str, list[Item]] = {split: [] for split in SPLITS}
    bad: dict[str, list[Bad]] = {split: [] for split in SPLITS}
    for key in sorted(set(photos) | set(parts), key=int):
        split = "test" if key in test else "train"
        if key not in photos:
            some = next(iter(parts[key].values()))
            bad[split].append(
                Bad(
                    split,
                    key,
                    f"{some}: face {key} has no photo {photos_dir / key}.jpg; "
                    "add it or remove its part masks",
                )
            )
        elif key not in parts:
            bad[split].append(
                Bad(
                    split,
                    key,
                    f"{photos[key]}: face {key} has no part masks in "
                    f"{masks_dir}/*/{int(key):05d}_<part>.png; add them or remove the photo",
                )
            )
        else:
            items[split].append(Item(split, key, {**parts[key], "img": photos[key]}))
    splits = {s: Split(items[s], bad[s], True) for s in SPLITS if items[s] or bad[s]}
    return Source(src, "celebamask-hq", "labels", False, splits)


def _celeba_test_ids(src: Path, keys: list[str]) -> set[str]:
    """CelebA's partition through the dataset's mapping file, else a seeded tenth."""
    mapping = src / "CelebA-HQ-to-CelebA-mapping.txt"
    if not mapping.is_file():
        return {k for k in keys if zlib.crc32(k.encode()) % 10 == 0}
    test = set()
    for number, line in enumerate(mapping.read_text().splitlines()[1:], 2):
        fields = line.split()
        if len(fields) < 2 or not (fields[0].isdigit() and fields[1].isdigit()):
            raise DatasetError(
                f"{mapping}:{number}: expected 'idx orig_idx orig_file'; restore the file "
                "from the dataset or remove it (a seeded split is used then)"
            )
        if int(fields[1]) >= CELEBA_TEST_FROM:
            test.add(str(int(fields[0])))
    return test


def _ade20k_root(src: Path) -> Path:
    """`ADEChallengeData2016/` inside `src`, or `src` itself."""
    inner = src / "ADEChallengeData2016"
    return inner if inner.is_dir() else src


def _ade20k_roles(root: Path) -> dict[str, list[Role]]:
    folders = {s: (root / "annotations" / a, root / "images" / a) for s, a in ADE20K_SPLITS.items()}
    return _folder_roles(folders, f"{root / 'annotations'}: has no training/ or validation/")


def _folder_roles(folders: dict[str, tuple[Path, Path]], missing: str) -> dict[str, list[Role]]:
    """Split -> roles for layouts with one folder of label maps and one of photos per split
    (ADE20K, COCO-Stuff): the labels, then the photos (required for train)."""
    roles: dict[str, list[Role]] = {}
    for split, (labels, photos) in folders.items():
        if not labels.is_dir():
            continue
        roles[split] = [Role("label", labels, None)]
        if photos.is_dir():
            roles[split].append(Role("img", photos, None))
        elif split == "train":
            raise DatasetError(f"{photos}/ is missing; training needs the photos")
    if not roles:
        raise DatasetError(f"{missing}; {_EXPECTED}")
    return roles


def _identify(source: Source) -> Source:
    """Recognise Cityscapes (by layout, or by its file names in the reference layout, as the
    reference's own sample folder keeps them) and p2phd's toy scenes (by their toy.json)."""
    splits = source.splits.values()
    labels = [i.files["label"].name for s in splits for i in s.items if "label" in i.files]
    if source.layout == "cityscapes" or (labels and all(map(is_cityscapes_name, labels))):
        return dataclasses.replace(source, dataset="cityscapes", classes=CITYSCAPES_CLASSES)
    if source.layout == "ade20k":
        return dataclasses.replace(source, dataset="ade20k", classes=ADE20K_CLASSES)
    if source.layout == "celebamask-hq":
        return dataclasses.replace(source, dataset="celebamask-hq", classes=CELEBAMASK_CLASSES)
    if source.layout == "coco-stuff":
        return dataclasses.replace(source, dataset="coco-stuff", classes=COCO_STUFF_CLASSES)
    toy = source.root / "toy.json"
    if source.kind == "labels" and toy.is_file():
        try:
            classes = json.loads(toy.read_text())["classes"]
            names = check_class_names(classes, str(toy))
        except (OSError, ValueError, KeyError, TypeError, DatasetError):
            return source  # not ours after all: the classes are inferred
        return dataclasses.replace(source, dataset="toy", classes=names)
    return source


def _reference_dir(name: str) -> bool:
    split, _, role = name.partition("_")
    return split in SPLITS and role in ("label", "inst", "img", "A", "B")


def _reference_kind(src: Path, label_nc: int | None) -> str:
    """Labels or RGB inputs: --label-nc decides, else the folders that exist."""
    has_label = any((src / f"{s}_label").is_dir() for s in SPLITS)
    has_a = any((src / f"{s}_A").is_dir() for s in SPLITS)
    if label_nc == 0:
        if not has_a:
            raise DatasetError(
                f"{src}: --label-nc 0 reads RGB inputs from train_A/ and test_A/, and there are "
                "none; add them or pass the number of label classes"
            )
        return "rgb"
    if label_nc is not None and not has_label:
        raise DatasetError(
            f"{src}: has no train_label/ or test_label/ folder"
            + ("; for the RGB inputs in *_A/ pass --label-nc 0" if has_a else "")
        )
    if label_nc is None and has_label and has_a:
        raise DatasetError(
            f"{src}: holds both *_label/ and *_A/ folders; pass --label-nc N for the label maps "
            "or --label-nc 0 for the RGB inputs"
        )
    if not has_label and not has_a:
        raise DatasetError(f"{src}: has no train_label/ or test_label/ folder; {_EXPECTED}")
    return "labels" if has_label else "rgb"


def _reference_roles(src: Path, kind: str) -> dict[str, list[Role]]:
    """Split -> roles present, primary (label or input) first; checks the required folders."""
    primary = "label" if kind == "labels" else "input"
    photo = "img" if kind == "labels" else "B"
    folder = {"label": "label", "input": "A", "inst": "inst", "img": photo}
    present = {
        s: [r for r in (primary, "inst", "img") if (src / f"{s}_{folder[r]}").is_dir()]
        for s in SPLITS
    }
    present = {s: roles for s, roles in present.items() if roles}
    instance = any("inst" in roles for roles in present.values())
    for split, roles in present.items():
        if roles[0] != primary:
            first = src / f"{split}_{folder[roles[0]]}"
            raise DatasetError(
                f"{first}/ exists but {src / f'{split}_{folder[primary]}'}/ does not; add the "
                f"{NOUN[primary]}s or remove {first}/"
            )
        if instance and "inst" not in roles:
            raise DatasetError(
                f"{src / f'{split}_inst'}/ is missing while other splits have instance maps; "
                "add it or remove the other *_inst/ folders"
            )
        if split == "train" and "img" not in roles:
            raise DatasetError(
                f"{src / f'train_{photo}'}/ is missing; training needs the target photos"
            )
    return {
        split: [Role(r, src / f"{split}_{folder[r]}", None) for r in roles]
        for split, roles in present.items()
    }


def _cityscapes_roles(src: Path) -> dict[str, list[Role]]:
    """Split -> roles: labelIds, instanceIds (when any exist), leftImg8bit (required for train)."""
    roles: dict[str, list[Role]] = {}
    for split, city_split in CITYSCAPES_SPLITS.items():
        gt = src / "gtFine" / city_split
        if not gt.is_dir():
            continue
        photos = src / "leftImg8bit" / city_split
        roles[split] = [Role("label", gt, _CITY_SUFFIX["label"])]
        if any(gt.rglob(f"*{_CITY_SUFFIX['inst']}")):
            roles[split].append(Role("inst", gt, _CITY_SUFFIX["inst"]))
        if photos.is_dir():
            roles[split].append(Role("img", photos, _CITY_SUFFIX["img"]))
        elif split == "train":
            raise DatasetError(f"{photos}/ is missing; training needs the leftImg8bit photos")
    if not roles:
        raise DatasetError(f"{src / 'gtFine'}: has no train/ or val/ folder; {_EXPECTED}")
    with_inst = [s for s, rs in roles.items() if any(r.role == "inst" for r in rs)]
    if with_inst and len(with_inst) != len(roles):
        missing = next(s for s in roles if s not in with_inst)
        raise DatasetError(
            f"{src / 'gtFine' / CITYSCAPES_SPLITS[missing]}: has no *_gtFine_instanceIds.png "
            f"while gtFine/{CITYSCAPES_SPLITS[with_inst[0]]} has; add them or remove those"
        )
    return roles


def read_item(item: Item, label_nc: int | None) -> dict[str, np.ndarray]:
    """Decode and check every file of `item`; role -> array, primary (label or input) first.

    Id maps come as int64 `[H, W]` (>= 0, within 16 bits, labels < `label_nc` when given),
    photos as uint8 `[H, W, 3]`; all of one size. A problem raises a one-line `DatasetError`.
    """
    maps: dict[str, np.ndarray] = {}
    if any(role.startswith("part:") for role in item.files):
        return _read_face(item, label_nc)
    for role in ("label", "input", "inst", "img"):
        path = item.files.get(role)
        if path is None:
            continue
        if role == "label":
            fix = "pass --label-nc {top} or fix the map"
            ids = io.read_id_map(path)
            if item.coco_values:
                ids = coco.class_ids(path, ids)
            maps[role] = io.check_ids(path, ids, "label", label_nc, fix)
            if item.objects is not None:
                maps["inst"] = coco.instance_map(maps[role], item.objects, path)
        elif role == "inst":
            maps[role] = io.check_ids(path, io.read_id_map(path, "instance map"), "inst")
        else:
            maps[role] = io.read_rgb(path)
    first, *others = maps
    h, w = maps[first].shape[:2]
    for role in others:
        oh, ow = maps[role].shape[:2]
        if (oh, ow) != (h, w):
            raise DatasetError(
                f"{item.files[role]}: {NOUN[role]} is {ow}x{oh} but its {NOUN[first]} "
                f"{item.files[first]} is {w}x{h}; make them the same size or remove the pair"
            )
    return maps


def _read_face(item: Item, label_nc: int | None) -> dict[str, np.ndarray]:
    """CelebAMask-HQ: the part masks merged into one label map (each part's class drawn over
    the parts before it), and the photo read at the masks' size."""
    label: np.ndarray | None = None
    first = None
    for cls, part in enumerate(CELEBAMASK_PARTS, 1):
        path = item.files.get(f"part:{part}")
        if path is None:
            continue
        mask = np.asarray(io.open_image(path).convert("L")) >= 128
        if label is None:
            label, first = np.zeros(mask.shape, np.int64), path
        elif mask.shape != label.shape:
            raise DatasetError(
                f"{path}: part mask is {mask.shape[1]}x{mask.shape[0]} but {first} is "
                f"{label.shape[1]}x{label.shape[0]}; make the masks of a face one size or "
                "remove the face"
            )
        label[mask] = cls
    assert label is not None and first is not None
    io.check_ids(first, label, "label", label_nc)
    h, w = label.shape
    return {"label": label, "img": io.resize_rgb(io.read_rgb(item.files["img"]), w, h)}
