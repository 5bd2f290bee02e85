"""Semantic manipulation at synthesis: each region's style, and class edits (paper §3.4, §4).

A region is an instance (runs with --instance-feat) or a class (--label-feat). Its style is a
feature vector: a k-means centre of its class (random, chosen, or from a style map), an
explicit vector, or what E encodes from a real photo. Classes without clusters get their
class mean, or zeros if the class was never seen: never uninitialised memory (the
reference's `sample_features` bug). Choices are made for all regions at once.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from p2phd.data.names import class_id
from p2phd.errors import ConfigError, DatasetError
from p2phd.synth.features import FeatureBank


@dataclass(frozen=True, slots=True)
class StyleMap:
    """Per instance id and per class: a cluster index or an explicit feature vector."""

    instances: dict[int, int | tuple[float, ...]] = field(default_factory=dict)
    classes: dict[int, int | tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StyleSpec:
    """How synthesis picks features: `random` (seeded), or cluster `cluster` of each class;
    then the style map's entries; `vary` names the class or instance that changes across
    `--variations`."""

    mode: Literal["random", "cluster"] = "random"
    cluster: int = 0
    style_map: StyleMap = field(default_factory=StyleMap)
    vary: tuple[Literal["class", "instance"], int] | None = None
    seed: int = 0


def parse_style(text: str) -> tuple[Literal["random", "cluster"], int]:
    """`random` or `cluster=I`."""
    if text == "random":
        return "random", 0
    name, _, value = text.partition("=")
    if name == "cluster" and value.isdigit():
        return "cluster", int(value)
    raise ConfigError(f"--style {text}: use random or cluster=I (I a cluster index)")


def parse_relabel(text: str, names: Sequence[str], label_nc: int) -> tuple[int, int]:
    """`SRC:DST`, each class a number or a name: `21:11`, `tree:building`."""
    src, sep, dst = text.partition(":")
    if not (sep and src and dst):
        raise ConfigError(f"--relabel {text}: use SRC:DST, e.g. 21:11 or vegetation:building")
    option = f"--relabel {text}"
    return class_id(src, names, label_nc, option), class_id(dst, names, label_nc, option)


def parse_relabel_instance(text: str, names: Sequence[str], label_nc: int) -> tuple[int, int]:
    """`ID:DST`: an instance id (see p2phd inspect) and a class number or name."""
    ident, sep, dst = text.partition(":")
    if not (sep and ident.isdigit() and dst):
        raise ConfigError(f"--relabel-instance {text}: use ID:DST, e.g. 26001:truck")
    return int(ident), class_id(dst, names, label_nc, f"--relabel-instance {text}")


def parse_vary(
    text: str, names: Sequence[str], label_nc: int
) -> tuple[Literal["class", "instance"], int]:
    """`class:C` (a number or a name) or `instance:ID`."""
    kind, _, value = text.partition(":")
    if kind == "class" and value:
        return "class", class_id(value, names, label_nc, f"--vary {text}")
    if kind == "instance" and value.isdigit():
        return "instance", int(value)
    raise ConfigError(f"--vary {text}: use class:C (a number or a name) or instance:ID")


def read_style_map(path: Path, feat_num: int, label_nc: int, names: Sequence[str] = ()) -> StyleMap:
    """`{"instances": {"26001": 2}, "classes": {"vegetation": [0.1, -0.3, 0.5]}}`: cluster
    indices or explicit vectors of feat_num finite numbers; classes by number or name."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, bad UTF-8
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"--style-map {path}: not a readable JSON file ({reason})") from None
    if not isinstance(data, dict) or set(data) - {"instances", "classes"}:
        raise ConfigError(
            f"--style-map {path}: expected an object with 'instances' and/or 'classes'"
        )
    parsed: dict[str, dict[int, int | tuple[float, ...]]] = {}
    for part in ("instances", "classes"):
        table = data.get(part, {})
        if not isinstance(table, dict):
            raise ConfigError(
                f"--style-map {path}: '{part}' must be an object of id: style, "
                'e.g. {"26001": 2}'
            )
        entries: dict[int, int | tuple[float, ...]] = {}
        for key, value in table.items():
            where = f"--style-map {path}: {part}[{key}]"
            if part == "classes":
                ident = class_id(key, names, label_nc, where)
            elif key.isdigit():
                ident = int(key)
            else:
                raise ConfigError(f"{where}: instance keys are ids (see p2phd inspect)")
            entries[ident] = _style_value(value, feat_num, where)
        parsed[part] = entries
    return StyleMap(parsed["instances"], parsed["classes"])


def _style_value(value: object, feat_num: int, where: str) -> int | tuple[float, ...]:
    """A cluster index (an int >= 0) or a vector of `feat_num` finite numbers."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if not (
        isinstance(value, list)
        and len(value) == feat_num
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(f"{where}: a cluster index or a list of {feat_num} numbers")
    vector = tuple(float(v) for v in value)
    if not all(math.isfinite(v) for v in vector):
        raise ConfigError(f"{where}: {list(vector)} is not finite; give finite numbers")
    return vector


def relabel(
    label: np.ndarray,
    inst: np.ndarray | None,
    classes: list[tuple[int, int]],
    instances: list[tuple[int, int]],
    divisor: int,
    where: Path,
) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
    """Class edits on one map pair: every pixel of class SRC becomes DST (`classes`), or one
    instance becomes class DST (`instances`); instance ids follow, so boundaries and styles
    follow: a relabelled "thing" gets fresh ids of class DST, "stuff" merges into DST.

    Returns the edited maps and the instance ids this map does not have (left as they are:
    one edit over a folder of maps applies where the object is)."""
    label, inst = label.copy(), None if inst is None else inst.copy()
    for src, dst in classes:
        mask = label == src
        label[mask] = dst
        if inst is not None:
            stuff = inst == src
            things = (inst >= divisor) & (inst // divisor == src)
            k = inst[things] % divisor + _next_k(inst, dst, divisor)
            if k.size and k.max() >= divisor:
                raise DatasetError(
                    f"{where}: too many instances of classes {src} and {dst} together for "
                    f"ids class * {divisor} + k"
                )
            inst[things] = dst * divisor + k
            inst[stuff] = dst
    missing = []
    for ident, dst in instances:
        if inst is None:
            raise DatasetError(f"{where}: --relabel-instance needs instance maps (--inst)")
        mask = inst == ident
        if not mask.any():
            missing.append(ident)
            continue
        label[mask] = dst
        inst[mask] = fresh_instance_id(inst, dst, divisor)
    return label, inst, missing


def fresh_instance_id(inst: np.ndarray, cls: int, divisor: int) -> int:
    """An id no pixel of `inst` has, for a new object of class `cls`: the next
    cls * divisor + k where that convention holds, else one above the largest id."""
    new = cls * divisor + _next_k(inst, cls, divisor)
    if cls == 0 or new >= (cls + 1) * divisor or (inst == new).any():
        new = int(inst.max()) + 1  # any unused id keeps it a separate object
    return new


def _next_k(inst: np.ndarray, cls: int, divisor: int) -> int:
    """The first free instance number of class `cls` (ids cls * divisor + k)."""
    ks = inst[(inst >= divisor) & (inst // divisor == cls)] % divisor
    return int(ks.max()) + 1 if ks.size else 0


def regions(pool_map: Tensor, label_map: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Region ids `[U]`, each pixel's region index `[H*W]`, each region's class `[U]` (the
    label under its first pixel: edits keep labels and regions consistent)."""
    ids, inverse = torch.unique(pool_map.reshape(-1), return_inverse=True)
    first = torch.full((len(ids),), pool_map.numel(), dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, inverse, torch.arange(pool_map.numel(), device=ids.device), "amin")
    return ids, inverse, label_map.reshape(-1)[first]


def region_features(
    ids: np.ndarray,
    classes: np.ndarray,
    bank: FeatureBank,
    spec: StyleSpec,
    key: str,
    variation: int = 0,
) -> Tensor:
    """`[U, F]`: one feature vector per region under `spec`, deterministic for the seed, the
    image key and the variation number."""
    k = bank.count[classes]
    draw = variation if spec.vary is None else 0  # no target: each variation re-draws all
    choice = random_clusters(classes, bank, spec.seed, key, draw)
    if spec.mode == "cluster":
        _check_index(spec.cluster, classes, k, "--style cluster")
        choice = np.full_like(choice, spec.cluster)
    if spec.vary is not None:
        kind, target = spec.vary
        hit = (ids if kind == "instance" else classes) == target
        # variation v: cluster v of the target
        choice = np.where(hit, variation % np.maximum(k, 1), choice)
    explicit: dict[int, tuple[float, ...]] = {}
    for table, keys in ((spec.style_map.classes, classes), (spec.style_map.instances, ids)):
        for ident, value in table.items():  # instance entries come last and win
            hit = keys == ident
            if isinstance(value, int):
                _check_index(value, classes[hit], k[hit], f"--style-map entry {ident}")
                choice[hit] = value
            else:
                explicit |= dict.fromkeys(np.flatnonzero(hit).tolist(), value)
    clustered = bank.means[classes]
    if len(bank.centers):
        clustered = bank.centers[torch.from_numpy(bank.offset[classes] + choice)]
    vectors = torch.where(torch.from_numpy(k > 0)[:, None], clustered, bank.means[classes])
    for i, value in explicit.items():
        vectors[i] = torch.tensor(value)
    return vectors


def random_clusters(
    classes: np.ndarray, bank: FeatureBank, seed: int, key: str, draw: int = 0
) -> np.ndarray:
    """`[U]`: the seeded random cluster of each region (0 for classes without clusters),
    from the seed, the image key and the draw number (0: the first draw)."""
    stream = [seed, zlib.crc32(key.encode())] + ([draw] if draw else [])
    return np.random.default_rng(stream).integers(0, np.maximum(bank.count[classes], 1))


def _check_index(index: int, classes: np.ndarray, k: np.ndarray, option: str) -> None:
    bad = (k > 0) & (index >= k)
    if bad.any():
        c = int(classes[bad][0])
        raise ConfigError(
            f"{option}: cluster {index} does not exist for class {c}, which has "
            f"{int(k[bad][0])} (0..{int(k[bad][0]) - 1})"
        )
    none = k == 0
    if none.any() and option.startswith("--style-map"):
        raise ConfigError(
            f"{option}: class {int(classes[none][0])} has no clusters; give a "
            "feature vector instead"
        )
