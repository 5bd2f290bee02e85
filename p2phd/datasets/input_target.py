"""The layout of the Pix2PixHD forks for measured data (JeongHyunJin/Pix2PixHD): `Train/Input/`,
`Train/Target/`, `Test/Input/` (and `Test/Target/`), files paired by key. Its files are
measured fields (data/fields.py): `.npy`, `.fits`, float or 16-bit TIFF and PNG."""

from __future__ import annotations

from pathlib import Path

from p2phd.config import PrepConfig
from p2phd.data.pairing import Role, Source, pair_all
from p2phd.datasets import KnownDataset
from p2phd.errors import DatasetError

SPLIT_FOLDERS = {"train": "Train", "test": "Test"}


def _folder(root: Path, name: str) -> Path:
    """`root/name` in the case it has on disk (Train or train)."""
    for candidate in (name, name.lower()):
        if (root / candidate).is_dir():
            return root / candidate
    return root / name


def _detect(src: Path) -> bool:
    return (_folder(_folder(src, "Train"), "Input")).is_dir()


def _discover(src: Path, cfg: PrepConfig) -> Source:
    roles: dict[str, list[Role]] = {}
    for split, name in SPLIT_FOLDERS.items():
        base = _folder(src, name)
        inputs, targets = _folder(base, "Input"), _folder(base, "Target")
        if not inputs.is_dir():
            continue
        roles[split] = [Role("input", inputs, None)]
        if targets.is_dir():
            roles[split].append(Role("img", targets, None))
        elif split == "train":
            raise DatasetError(f"{targets}/ is missing; training needs the targets")
    return pair_all(src, "input-target", "field", roles)


DATASET = KnownDataset(
    name="input-target",
    classes=(),
    summary="",
    folders="Train/Input/, Train/Target/, Test/Input/ (the measured-data forks' layout)",
    detect=_detect,
    discover=_discover,
)
