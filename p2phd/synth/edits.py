"""Class edits at synthesis (paper §4, "changing labels"): every pixel of a class becomes
another (`--relabel vegetation:building`), or one object does (`--relabel-instance
26001:truck`). Instance ids follow the edit, so boundaries and styles follow too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from p2phd.data.names import class_id
from p2phd.errors import ConfigError, DatasetError


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
