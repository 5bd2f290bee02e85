"""The source side of `p2phd prep`: recognise the layout, find its files (paired by key in
`pairing.py`), then read and check one item.

Two kinds of layout are understood: the reference layout (NVIDIA/pix2pixHD `datasets/`:
`{train,test}_label/`, `_inst/`, `_img/`, or `{train,test}_A/` and `_B/` for RGB-input
datasets with `--label-nc 0`; the key of a file is its path below the folder without the
suffix, so nested folders pair too), and the downloads of the known datasets as they unpack
(`p2phd.datasets`: each module says how its folders are recognised and read). `--layout
auto` recognises each by its folders; a folder that looks like two is refused. A source in
the reference layout that holds a known dataset (Cityscapes' file names, the toy's
toy.json) takes its class names.

`read_item` decodes one item and checks what the reference only meets as a CUDA assert or a
silent error (ids out of range, colour-coded labels, sizes that differ).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from p2phd import datasets
from p2phd.config import PrepConfig
from p2phd.data import io
from p2phd.data.pairing import NOUN, SPLITS, Item, Role, Source, SourceKind, pair_all
from p2phd.data.palette import Palette, read_colours
from p2phd.errors import DatasetError

_REFERENCE = (
    "the reference layout (train_label/, train_inst/, train_img/, test_label/, ...; or "
    "train_A/, train_B/, ... for --label-nc 0)"
)


def _expected() -> str:
    """What a source folder may hold: every layout's folders."""
    known = [d.folders for d in datasets.known() if d.detect is not None and not d.variant_of]
    return "expected " + ", ".join([_REFERENCE, *known[:-1]]) + f" or {known[-1]}"


def discover(src: Path, cfg: PrepConfig) -> Source:
    """Detect (or take: `cfg.layout`) the layout of `src`, then list and pair its files per
    split."""
    label_nc, layout = cfg.label_nc, cfg.layout
    if layout not in ("auto", *datasets.layouts()):
        raise DatasetError(
            f"--layout {layout}: must be one of auto, {', '.join(datasets.layouts())}"
        )
    if not src.is_dir():
        raise DatasetError(f"{src}: source folder not found; {_expected()}")
    found = detect_layouts(src)
    if layout == "auto":
        if len(found) > 1:
            raise DatasetError(
                f"{src}: looks like {' and like '.join(found)}; keep one layout per source "
                f"folder, or pass --layout {found[0]}"
            )
        if not found:
            what = "empty folder" if not any(src.iterdir()) else "not a dataset source"
            raise DatasetError(f"{src}: {what}; {_expected()}")
        layout = found[0]
    elif layout not in found and not _holds(src, layout):
        raise DatasetError(f"{src}: not in the {layout} layout; {_expected()}")
    known = datasets.get(layout)
    if layout != "reference" and label_nc == 0 and (known is None or known.classes):
        raise DatasetError(f"{src}: {layout} has label maps; drop --label-nc 0")
    if cfg.palette is not None and layout != "reference":
        raise DatasetError(
            f"--palette: {src} is in the {layout} layout, whose label maps hold ids; "
            "--palette reads colour-coded label maps in the reference layout (train_label/ ...)"
        )
    if cfg.coco_instances and layout != "coco-stuff":
        raise DatasetError(
            f"--coco-instances: {src} is in the {layout} layout; COCO's instance annotations "
            "go with COCO-Stuff's label maps (--layout coco-stuff)"
        )
    if known is not None and known.discover is not None:
        source = known.discover(src, cfg)
        return dataclasses.replace(source, dataset=known.name, classes=known.classes)
    kind = _reference_kind(src, label_nc)
    source = _identify(pair_all(src, "reference", kind, _reference_roles(src, kind)))
    if kind == "rgb" and (cfg.field or _holds_fields(source)):
        source = dataclasses.replace(source, kind="field")
    return source


def _holds_fields(source: Source) -> bool:
    """RGB inputs are photos unless their files are measurements (.npy, FITS, float or
    16-bit TIFF and PNG): the first input file decides."""
    from p2phd.data.fields import is_field_file

    first = next((i for s in source.splits.values() for i in s.items), None)
    return first is not None and is_field_file(first.files["input"])


def detect_layouts(src: Path) -> list[str]:
    """The layouts whose folders `src` holds (more than one is an error for `auto`)."""
    found = []
    if any(p.is_dir() and _reference_dir(p.name) for p in src.iterdir()):
        found.append("reference")
    found += [d.name for d in datasets.known() if d.detect and not d.variant_of and d.detect(src)]
    return found


def _holds(src: Path, layout: str) -> bool:
    """Whether `src` holds the download of `layout` (a variant, which auto never picks)."""
    known = datasets.get(layout)
    return known is not None and known.detect is not None and known.detect(src)


def _identify(source: Source) -> Source:
    """A known dataset in the reference layout (Cityscapes by its file names, as the
    reference's own sample folder keeps them; p2phd's toy scenes by their toy.json)."""
    for known in datasets.known():
        classes = known.recognise(source) if known.recognise is not None else None
        if classes:
            return dataclasses.replace(source, dataset=known.name, classes=classes)
    return source


def _reference_dir(name: str) -> bool:
    split, _, role = name.partition("_")
    return split in SPLITS and role in ("label", "inst", "img", "A", "B")


def _reference_kind(src: Path, label_nc: int | None) -> SourceKind:
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
        raise DatasetError(f"{src}: has no train_label/ or test_label/ folder; {_expected()}")
    return "labels" if has_label else "rgb"


def _reference_roles(src: Path, kind: SourceKind) -> dict[str, list[Role]]:
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


def read_item(
    item: Item, label_nc: int | None, palette: Palette | None = None
) -> dict[str, np.ndarray]:
    """Decode and check every file of `item`; role -> array, primary (label or input) first.

    Id maps come as int64 `[H, W]` (>= 0, within 16 bits, labels < `label_nc` when given),
    photos as uint8 `[H, W, 3]`; all of one size. A problem raises a one-line `DatasetError`.
    Items of a known dataset with files of its own are read by its `read_item`; with a
    `palette`, label maps are colours turned into ids.
    """
    known = datasets.get(item.reader) if item.reader else None
    if known is not None and known.read_item is not None:
        return known.read_item(item, label_nc)
    return read_files(item, label_nc, palette=palette)


def read_files(
    item: Item,
    label_nc: int | None,
    label_values: Callable[[Path, np.ndarray], np.ndarray] | None = None,
    draw_instances: Callable[[np.ndarray, Path], np.ndarray | None] | None = None,
    palette: Palette | None = None,
) -> dict[str, np.ndarray]:
    """`read_item` for files of the four roles. `label_values` turns a label file's values
    into class ids (a dataset that stores them otherwise); `draw_instances` makes the
    instance map from the label map (a dataset that annotates objects apart)."""
    maps: dict[str, np.ndarray] = {}
    for role in ("label", "input", "inst", "img"):
        path = item.files.get(role)
        if path is None:
            continue
        if role == "label":
            fix = "fix the map"  # prep adds the --label-nc that holds the whole source
            ids = palette.ids_of(path, read_colours(path)) if palette else io.read_id_map(path)
            if label_values is not None:
                ids = label_values(path, ids)
            maps[role] = io.check_ids(path, ids, "label", label_nc, fix)
            drawn = draw_instances(maps[role], path) if draw_instances is not None else None
            if drawn is not None:
                maps["inst"] = drawn
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
