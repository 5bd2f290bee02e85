"""The datasets p2phd knows by name, one module each (as timm keeps one file per model).

A module defines `DATASET`, a `KnownDataset`: its class names, its unlabeled id, its
instance-id divisor, the table its segmenters score against, its label colours, and, for
datasets whose download prep reads as it unpacks, how that layout is recognised, paired and
read. Adding a dataset is adding a module here: prep's `--layout`, evaluate's `--label-map`,
the class names of messages and pages and the scoring rules all follow from it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from p2phd.config import PrepConfig
    from p2phd.data.pairing import Item, Source

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class KnownDataset:
    """What p2phd knows of one dataset (see the package's docstring)."""

    name: str  # as --layout, --label-map and dataset.json's "dataset" spell it
    classes: tuple[str, ...]  # class id -> name, the ids prep writes
    summary: str  # how prep's summary says where the classes came from
    unlabeled: int | None = None  # the id of "unlabeled": a class of its own, not scored
    class_divisor: int = 1000  # an object's instance id is class * this + k
    label_table: Mapping[int, int] | None = None  # label -> segmenter class; others ignored
    colours: Sequence[RGB] | None = None  # the dataset's own label colours, per class
    folders: str = ""  # the folders of its download, for the message of an unknown source
    detect: Callable[[Path], bool] | None = None  # does this folder hold its download
    discover: Callable[[Path, PrepConfig], Source] | None = None  # its items, paired
    read_item: Callable[[Item, int | None], dict[str, np.ndarray]] | None = None  # one item
    recognise: Callable[[Source], tuple[str, ...] | None] | None = None  # in another layout
    variant_of: str | None = None  # the same download read another way: chosen by name only
    folder_classes: Callable[[Path], tuple[str, ...] | None] | None = None  # a source folder's

    @property
    def label_nc(self) -> int:
        return len(self.classes)

    @property
    def is_layout(self) -> bool:
        """Whether prep reads its download as it unpacks (`--layout NAME`)."""
        return self.discover is not None


@cache
def known() -> tuple[KnownDataset, ...]:
    """Every dataset module's `DATASET`, in the order of their names."""
    found = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        found.append(importlib.import_module(f"{__name__}.{module}").DATASET)
    return tuple(found)


def get(name: str) -> KnownDataset | None:
    """The dataset called `name`, or None."""
    return next((d for d in known() if d.name == name), None)


def by_classes(names: Sequence[str]) -> KnownDataset | None:
    """The dataset whose classes these are (a run or dataset records its class names)."""
    return next((d for d in known() if names and tuple(names) == d.classes), None)


def layouts() -> tuple[str, ...]:
    """The layouts prep reads: the reference's, then each known dataset's download."""
    return ("reference", *(d.name for d in known() if d.is_layout))
