"""CelebAMask-HQ (Lee et al. 2020) as its zip unpacks: `CelebA-HQ-img/<id>.jpg` with the
part masks `CelebAMask-HQ-mask-anno/<group>/<id:05d>_<part>.png`, merged into one label map
of 19 classes (background and 18 parts, later parts drawn over earlier ones, in the order
of the dataset's own merge tool; `celebamask_hq_face_parsing` is the same download merged
in the face-parsing project's order); the photos
(1024x1024) are read at the masks' size (512x512). No instance maps. The split is CelebA's
own (test from CelebA image 162771 on) through `CelebA-HQ-to-CelebA-mapping.txt` when it is
there, else every tenth face by a hash of its id.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from p2phd.config import PrepConfig
from p2phd.data import io
from p2phd.data.io import IMAGE_SUFFIXES
from p2phd.data.pairing import SPLITS, Bad, Item, Source, Split
from p2phd.datasets import KnownDataset
from p2phd.errors import DatasetError

# CelebAMask-HQ's 18 part masks in the order of the dataset's own merge tool
# (face_parsing/Data_preprocessing/g_mask.py in the download): part i is class i + 1 and is
# drawn over the parts before it; class 0 is the background (no part). The official merged
# masks use these ids.
PARTS = tuple(
    "skin nose eye_g l_eye r_eye l_brow r_brow l_ear r_ear mouth u_lip l_lip hair hat "
    "ear_r neck_l neck cloth".split()
)
TEST_FROM = 162770  # 0-based CelebA index where its val and test partitions begin
FOLDER_NAMES = ("CelebA-HQ-img", "CelebAMask-HQ-mask-anno")
FOLDERS = "CelebAMask-HQ (CelebA-HQ-img/, CelebAMask-HQ-mask-anno/)"


def _detect(src: Path) -> bool:
    return all((src / folder).is_dir() for folder in FOLDER_NAMES)


def _discover(src: Path, cfg: PrepConfig, name: str, order: tuple[str, ...]) -> Source:
    """Faces by id: the photo and every part mask of that id; a face lacking either is bad."""
    photos_dir, masks_dir = (src / folder for folder in FOLDER_NAMES)
    photos: dict[str, Path] = {}
    for path in sorted(photos_dir.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.stem.isdigit():
            photos[str(int(path.stem))] = path
    parts: dict[str, dict[str, Path]] = {}
    for path in sorted(masks_dir.glob("*/*.png")):
        ident, _, part = path.stem.partition("_")
        if ident.isdigit() and part in order:
            parts.setdefault(str(int(ident)), {})[f"part:{part}"] = path
    if not photos and not parts:
        raise DatasetError(f"{src}: no faces in {photos_dir}/ or {masks_dir}/; {FOLDERS}")
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
            items[split].append(Item(split, key, {**parts[key], "img": photos[key]}, reader=name))
    splits = {s: Split(items[s], bad[s], True) for s in SPLITS if items[s] or bad[s]}
    return Source(src, name, "labels", False, splits)


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
        if int(fields[1]) >= TEST_FROM:
            test.add(str(int(fields[0])))
    return test


def _read_face(item: Item, label_nc: int | None, order: tuple[str, ...]) -> dict[str, np.ndarray]:
    """CelebAMask-HQ: the part masks merged into one label map (part i of `order` is class
    i + 1, drawn over the parts before it), and the photo read at the masks' size."""
    label: np.ndarray | None = None
    first = None
    for cls, part in enumerate(order, 1):
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


def celebamask(
    name: str, order: tuple[str, ...], summary: str, variant_of: str | None = None
) -> KnownDataset:
    """CelebAMask-HQ's download merged with the parts in `order`; a variant (another order)
    is chosen by name, never by `--layout auto`."""
    return KnownDataset(
        name=name,
        classes=("background", *order),
        summary=summary,
        folders=FOLDERS,
        detect=_detect,
        discover=lambda src, cfg: _discover(src, cfg, name, order),
        read_item=lambda item, label_nc: _read_face(item, label_nc, order),
        variant_of=variant_of,
    )


DATASET = celebamask("celebamask-hq", PARTS, "CelebAMask-HQ's 18 parts and background")
