"""The inputs of `synthesize`: label maps paired with instance maps (and photos) by key, then
read, checked, resized to the size the run works at, and edited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from p2phd.config import NetConfig
from p2phd.data.augment import scaled_size
from p2phd.data.io import (
    IMAGE_SUFFIXES,
    check_ids,
    image_size,
    not_there,
    read_id_map,
    read_rgb,
    resize_ids,
    resize_rgb,
    to_channels,
)
from p2phd.data.names import KEY_RULE, name_key
from p2phd.errors import ConfigError, DatasetError
from p2phd.limits import MAX_SIDE, check_side
from p2phd.synth.edits import relabel


@dataclass(frozen=True, slots=True)
class SynthItem:
    key: str
    label: Path
    inst: Path | None
    photo: Path | None = None


def _files(path: Path, what: str = "label maps") -> list[Path]:
    """The images of a file or a folder (and its subfolders); `what` they are, for the
    message when it does not exist."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if path.is_file():
        return [path]
    raise DatasetError(f"{path}: {not_there(path)}; pass {what} (a file or a folder)")


def _by_key(paths: Sequence[Path], what: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in (p for path in paths for p in _files(path, what)):
        found.setdefault(name_key(p.name), p)
    return found


def collect_items(
    inputs: Sequence[Path], inst: Sequence[Path], need_inst: bool, photos: Sequence[Path] = ()
) -> list[SynthItem]:
    """Label files (folders expanded) paired with instance maps and photos by name key (the
    file name without its extension and dataset suffixes such as _gtFine_labelIds). One label
    file given with one instance file (and one photo) pair whatever their names."""
    for group, what in (
        (inst, "the instance maps of --inst"),
        (photos, "the photos of --style-from"),
    ):
        for path in group:  # checked first: a wrong option path is named by its option
            if not path.exists():
                _files(path, what)
    labels = [p for path in inputs for p in _files(path)]
    if not labels:
        raise DatasetError(f"{', '.join(map(str, inputs))}: no label maps found")
    if (
        len(inputs) == 1
        and inputs[0].is_file()
        and all(len(group) == 1 and group[0].is_file() for group in (inst, photos) if group)
    ):
        key = name_key(labels[0].name)
        partner = inst[0] if inst else None
        if need_inst and partner is None:
            raise DatasetError(f"{labels[0]}: this run uses instance maps: pass --inst FILE")
        photo = photos[0] if photos else None
        return [SynthItem(key, labels[0], partner if need_inst else None, photo)]
    instances = _by_key(inst, "the instance maps of --inst")
    styles = _by_key(photos, "the photos of --style-from")
    items, seen = [], set()
    for label in labels:
        key = name_key(label.name)
        if key in seen:
            raise DatasetError(f"{label}: a second label map with the key {key!r}; rename one")
        seen.add(key)
        partner = instances.get(key)
        if need_inst and partner is None:
            where = ", ".join(map(str, inst)) or "(no --inst given)"
            raise DatasetError(
                f"{label}: no instance map with the key {key!r} in {where}; {KEY_RULE}; "
                "this run uses instance maps: pass --inst FOLDER"
            )
        photo = styles.get(key)
        if photos and photo is None:
            raise DatasetError(
                f"{label}: no photo with the key {key!r} in --style-from "
                f"{', '.join(map(str, photos))}; {KEY_RULE}"
            )
        items.append(SynthItem(key, label, partner if need_inst else None, photo))
    return items


def target_size(item: SynthItem, net: NetConfig, width: int | None) -> tuple[int, int]:
    """(width, height) the generator will see: the file's size, or resized to `width`."""
    return fit_size(*image_size(item.label), net, width, item.label)


def fit_size(w: int, h: int, net: NetConfig, width: int | None, where: Path) -> tuple[int, int]:
    """A `w` x `h` map's size for G: resized to `width` by the one size rule, or as it is
    when it is a multiple of the run's 2^downsamplings."""
    m = net.size_multiple
    if width is not None and width < 1:
        raise ConfigError(f"--width {width}: give a width of at least {net.min_side} pixels")
    check_side(width, "--width")
    if width is not None:
        size = scaled_size(w, h, width, m)
    elif w % m or h % m:
        raise DatasetError(
            f"{where}: {w}x{h} is not a multiple of {m} for this run; "
            f"pass --width {max(m, round(w / m) * m)} to resize"
        )
    else:
        size = (w, h)
    check_min_size(size, net, where)
    return size


def check_min_size(size: tuple[int, int], net: NetConfig, where: object) -> None:
    """Both sides at least `net.min_side`: smaller maps leave G's bottleneck 1 pixel wide,
    which its reflection padding cannot pad (torch's error, never a picture)."""
    w, h = size
    if max(w, h) > MAX_SIDE:
        fit = MAX_SIDE * w // max(w, h) // net.size_multiple * net.size_multiple
        raise ConfigError(
            f"{where}: {w}x{h} is past the largest side p2phd takes, {MAX_SIDE}; pass "
            f"--width {fit} or less"
        )
    if min(w, h) < net.min_side:
        n = net.min_side
        fit = max(n, -(-n * w // h) // net.size_multiple * net.size_multiple) if h < n else n
        raise ConfigError(
            f"{where}: {w}x{h} is too small for this run's G, whose sides must be at least "
            f"{n} (2 x its 2^downsamplings); pass --width {fit} or more"
        )


@dataclass
class Input:
    """One input as G sees it: the maps (and photo) at the size G works at, edits applied."""

    item: SynthItem
    label: np.ndarray  # [H, W] ids, or [H, W, C] uint8 for RGB-input runs
    inst: np.ndarray | None
    photo: np.ndarray | None  # [H, W, C] uint8: E encodes its regions' styles
    missing: list[int] = field(default_factory=list)  # --relabel-instance ids not in this map


def read_input(
    item: SynthItem,
    net: NetConfig,
    size: tuple[int, int],
    classes: Sequence[tuple[int, int]] = (),
    instances: Sequence[tuple[int, int]] = (),
) -> Input:
    """Read, check, resize and edit one input."""
    if net.label_nc == 0:
        return prepare_input(item, read_rgb(item.label), None, None, net, size)
    label = read_id_map(item.label)
    inst = read_id_map(item.inst, "instance map") if item.inst is not None else None
    photo = read_rgb(item.photo) if item.photo else None
    return prepare_input(item, label, inst, photo, net, size, classes, instances)


def prepare_input(
    item: SynthItem,
    label: np.ndarray,
    inst: np.ndarray | None,
    photo: np.ndarray | None,
    net: NetConfig,
    size: tuple[int, int],
    classes: Sequence[tuple[int, int]] = (),
    instances: Sequence[tuple[int, int]] = (),
) -> Input:
    """Check, resize and edit one input's maps (read from files or given as arrays)."""
    if net.label_nc == 0:
        return Input(item, to_channels(resize_rgb(label, *size), net.input_nc), None, None)
    label = check_ids(
        item.label, label, "label", net.label_nc, "use label maps of this run's classes"
    )
    if inst is not None:
        inst = check_ids(
            item.inst or item.label, inst, "inst", net.label_nc, divisor=net.class_divisor,
            objects_only=net.style_pool != "instance",
        )  # fmt: skip
        if inst.shape != label.shape:
            raise DatasetError(
                f"{item.inst}: {inst.shape[1]}x{inst.shape[0]} but the label map "
                f"{item.label} is {label.shape[1]}x{label.shape[0]}; use maps of "
                "one size"
            )
    label = resize_ids(label, *size)
    inst = resize_ids(inst, *size) if inst is not None else None
    label, inst, missing = relabel(
        label, inst, list(classes), list(instances), net.class_divisor, item.label
    )
    if photo is not None:
        photo = to_channels(resize_rgb(photo, *size), net.output_nc)
    return Input(item, label, inst, photo, missing)


def size_notes(
    items: list[SynthItem], sizes: dict[str, tuple[int, int]], trained: tuple[int, int] | None
) -> list[str]:
    """One note for the maps whose aspect ratio differs from the training images'."""
    if trained is None:
        return []
    own = {i.key: image_size(i.label) for i in items}
    other = [i for i in items if own[i.key][0] * trained[1] != own[i.key][1] * trained[0]]
    if not other:
        return []
    (w, h), (new_w, new_h) = own[other[0].key], sizes[other[0].key]
    return [
        f"{len(other)} of {len(items)} label maps have another aspect ratio than the "
        f"{trained[0]}x{trained[1]} training images; they were resized by the one size rule "
        f"(first: {other[0].label.name} {w}x{h} -> {new_w}x{new_h})"
    ]
