"""Semantic manipulation at synthesis: each region's style (paper §3.4; class edits are in
`synth.edits`).

A region is an instance (runs with --instance-feat) or a class (--label-feat). Its style is a
feature vector: a k-means centre of its class (random, chosen, or from a style map), an
explicit vector, or what E encodes from a real photo. Classes without clusters get their
class mean, or zeros if the class was never seen: never uninitialised memory (the
reference's `sample_features` bug). Choices are made for all regions at once.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from p2phd.data.names import class_id, class_name, class_with_id
from p2phd.errors import ConfigError
from p2phd.jsonfile import SchemaError, read_json
from p2phd.limits import check_seed
from p2phd.synth.bank import FeatureBank


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

    def __post_init__(self) -> None:
        check_seed(self.seed)


def parse_style(text: str) -> tuple[Literal["random", "cluster"], int]:
    """`random` or `cluster=I`."""
    if text == "random":
        return "random", 0
    name, _, value = text.partition("=")
    if name == "cluster" and value.isdigit():
        return "cluster", int(value)
    raise ConfigError(f"--style {text}: use random or cluster=I (I a cluster index)")


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


STYLE_MAP_MAX_BYTES = 64 * 1024 * 1024  # the editor writes kilobytes


def read_style_map(path: Path, feat_num: int, label_nc: int, names: Sequence[str] = ()) -> StyleMap:
    """`{"instances": {"26001": 2}, "classes": {"vegetation": [0.1, -0.3, 0.5]}}`: cluster
    indices or explicit vectors of feat_num numbers in -1..1 (E's features); classes by
    number or name."""
    try:  # NaN is parsed, to be named below as not finite where it stands
        data = read_json(path, max_bytes=STYLE_MAP_MAX_BYTES, allow_nan=True)
    except (OSError, SchemaError) as exc:
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


FEATURE_BOUND = 1 + 1e-6  # E's tanh output, and the written decimals of it


def _style_value(value: object, feat_num: int, where: str) -> int | tuple[float, ...]:
    """A cluster index (an int >= 0) or a vector of `feat_num` numbers in -1..1."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if not (
        isinstance(value, list)
        and len(value) == feat_num
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(f"{where}: a cluster index or a list of {feat_num} numbers")
    vector = tuple(float(v) for v in value)
    if not all(math.isfinite(v) and abs(v) <= FEATURE_BOUND for v in vector):
        raise ConfigError(
            f"{where}: {list(vector)} lies outside -1..1, where E's features lie (its last "
            "layer is tanh); give numbers in -1..1"
        )
    return vector


def regions(pool_map: Tensor, label_map: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Region ids `[U]`, each pixel's region index `[H*W]`, each region's class `[U]` (the
    label under its first pixel: edits keep labels and regions consistent)."""
    ids, inverse = torch.unique(pool_map.reshape(-1), return_inverse=True)
    first = torch.full((len(ids),), pool_map.numel(), dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, inverse, torch.arange(pool_map.numel(), device=ids.device), "amin")
    return ids, inverse, label_map.reshape(-1)[first]


Style = int | tuple[float, ...]  # a cluster index of the region's class, or a feature vector


def region_styles(
    ids: np.ndarray,
    classes: np.ndarray,
    bank: FeatureBank,
    spec: StyleSpec,
    key: str,
    variation: int = 0,
) -> tuple[np.ndarray, dict[int, tuple[float, ...]]]:
    """The style rule: each region's cluster `[U]` (meaningless where its class has none),
    and the regions (by index) that take an explicit vector instead. Deterministic for the
    seed, the image key and the variation number."""
    k = bank.count[classes]
    draw = variation if spec.vary is None else 0  # no target: each variation re-draws all
    choice = random_clusters(classes, bank, spec.seed, key, draw)
    if spec.mode == "cluster":  # a class with fewer clusters takes it modulo its count
        choice = spec.cluster % np.maximum(k, 1)
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
                where = f"--style-map entry {ident}"
                _check_index(value, classes[hit], k[hit], where, bank.names)
                choice[hit] = value
                for i in np.flatnonzero(hit).tolist():
                    explicit.pop(i, None)
            else:
                explicit |= dict.fromkeys(np.flatnonzero(hit).tolist(), value)
    return choice, explicit


def region_features(
    ids: np.ndarray,
    classes: np.ndarray,
    bank: FeatureBank,
    spec: StyleSpec,
    key: str,
    variation: int = 0,
) -> Tensor:
    """`[U, F]`: one feature vector per region under `spec` (`region_styles`): its cluster's
    centre, or its class mean where the class has no clusters, or its explicit vector."""
    choice, explicit = region_styles(ids, classes, bank, spec, key, variation)
    k = bank.count[classes]
    clustered = bank.means[classes]
    if len(bank.centers):
        clustered = bank.centers[torch.from_numpy(bank.offset[classes] + choice)]
    vectors = torch.where(torch.from_numpy(k > 0)[:, None], clustered, bank.means[classes])
    for i, value in explicit.items():
        vectors[i] = torch.tensor(value)
    return vectors


def pinned_styles(
    ids: np.ndarray,
    classes: np.ndarray,
    bank: FeatureBank,
    spec: StyleSpec,
    key: str,
    variation: int = 0,
) -> dict[int, Style]:
    """Region id -> its style under `spec`, for every region that has one (a cluster of its
    class, or an explicit vector): `pinned` of this table renders the same image."""
    choice, explicit = region_styles(ids, classes, bank, spec, key, variation)
    k = bank.count[classes]
    table: dict[int, Style] = {
        int(ident): int(c) for ident, c, n in zip(ids, choice, k, strict=True) if n
    }
    return table | {int(ids[i]): value for i, value in explicit.items()}


def pinned(table: dict[int, Style], pool: Literal["instance", "label"]) -> StyleSpec:
    """A spec that gives every region of `table` its style: by instance id for runs that pool
    per instance, by class for runs that pool per class (their regions are classes)."""
    if pool == "instance":
        return StyleSpec(style_map=StyleMap(instances=dict(table)))
    return StyleSpec(style_map=StyleMap(classes=dict(table)))


def style_caption(
    spec: StyleSpec, variation: int, variations: int, clusters: int, names: Sequence[str]
) -> str:
    """What `region_styles` gives image `variation` of `variations`, in words (`clusters`:
    how many the class `spec.vary` names has)."""
    if spec.vary is not None and variations > 1:
        kind, target = spec.vary
        if kind == "class":
            what = f"{class_name(target, names)} in its cluster"
            return (
                f"variation {variation}: {what} {variation % clusters}"
                if clusters
                else f"variation {variation}"
            )
        return (
            f"variation {variation}: instance {target} in cluster {variation} of its class "
            "(cycling)"
        )
    if spec.mode == "cluster":
        base = f"cluster {spec.cluster} of every class (modulo its count)"
    else:
        base = f"random styles (seed {spec.seed})"
    return f"variation {variation}: {base}, draw {variation}" if variations > 1 else base


def style_notes(
    spec: StyleSpec, variations: int, bank: FeatureBank, names: Sequence[str]
) -> list[str]:
    """What `region_styles` does that a user would not guess, said once: a chosen cluster or
    variations beyond a class's clusters wrap around them."""
    notes: list[str] = []
    if spec.mode == "cluster":
        fewer = [c for c in range(len(bank.count)) if 0 < bank.count[c] <= spec.cluster]
        if fewer:
            listed = ", ".join(
                f"{class_name(c, names)} ({bank.count[c]}: cluster {spec.cluster % bank.count[c]})"
                for c in fewer[:3]
            )
            more = f" and {len(fewer) - 3} more" if len(fewer) > 3 else ""
            notes.append(
                f"--style cluster={spec.cluster}: classes with fewer clusters take it modulo "
                f"their count: {listed}{more}"
            )
    vary = spec.vary
    if vary is None or vary[0] != "class" or variations <= 1:
        return notes
    target, count = vary[1], bank.clusters(vary[1])
    name = class_name(target, names)
    if count == 0:
        notes.append(
            f"--vary class:{target}: {name} has no clusters; every variation gives it its "
            "mean feature"
        )
    elif variations > count:
        notes.append(
            f"--variations {variations}: {name} has {count} clusters; variations "
            f"{count}..{variations - 1} repeat them in turn"
        )
    return notes


def random_clusters(
    classes: np.ndarray, bank: FeatureBank, seed: int, key: str, draw: int = 0
) -> np.ndarray:
    """`[U]`: the seeded random cluster of each region (0 for classes without clusters),
    from the seed, the image key and the draw number (0: the first draw)."""
    stream = [seed, zlib.crc32(key.encode())] + ([draw] if draw else [])
    return np.random.default_rng(stream).integers(0, np.maximum(bank.count[classes], 1))


def _check_index(
    index: int, classes: np.ndarray, k: np.ndarray, option: str, names: Sequence[str]
) -> None:
    bad = (k > 0) & (index >= k)
    if bad.any():
        c = int(classes[bad][0])
        raise ConfigError(
            f"{option}: cluster {index} does not exist for {class_with_id(c, names)}, which has "
            f"{int(k[bad][0])} (0..{int(k[bad][0]) - 1})"
        )
    none = k == 0
    if none.any() and option.startswith("--style-map"):
        raise ConfigError(
            f"{option}: {class_with_id(int(classes[none][0]), names)} has no clusters; give a "
            "feature vector instead"
        )
