"""`dataset.json`, the manifest `p2phd prep` writes beside a prepped dataset, as one typed value.

prep builds a `Manifest` and writes it; the training reader, the run's defaults and `inspect`
read it back through `read_manifest`, which decodes the file strictly (`p2phd.jsonfile`): a
missing field, a wrong type or an impossible value is one line naming the file and the field,
never a `KeyError` deep in training.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from p2phd.config import FieldSpec
from p2phd.errors import ConfigError, DatasetError
from p2phd.jsonfile import read_typed

SCHEMA_VERSION = 1
MANIFEST = "dataset.json"


@dataclass(frozen=True)
class ManifestItem:
    """One prepped item: `<split>/{label,inst,img,...}/<key>.png`, all `width` x `height`."""

    key: str
    width: int
    height: int

    def __post_init__(self) -> None:
        if not self.key or "/" in self.key or "\\" in self.key or self.key.startswith("."):
            raise ConfigError(f"key {self.key!r} is not a file name")
        if self.width < 1 or self.height < 1:
            raise ConfigError(f"{self.key}: size {self.width}x{self.height} is not positive")


@dataclass(frozen=True)
class ManifestSplit:
    """A split's items in key order, and whether it has photos (a test split may not)."""

    has_images: bool
    items: tuple[ManifestItem, ...]

    def __post_init__(self) -> None:
        keys = [item.key for item in self.items]
        if len(set(keys)) != len(keys):
            raise ConfigError("items: a key is listed twice")


@dataclass(frozen=True)
class Skipped:
    """An item `prep --skip-bad` left out, and why."""

    split: str
    key: str
    reason: str


@dataclass(frozen=True)
class FieldStats:
    """What prep measured on one side of a field dataset: the values' range (after --fill)
    and how many values the saturation limits clipped."""

    low: float
    high: float
    clipped: int = 0  # values outside the saturation limits
    filled: int = 0  # NaN and inf values --fill replaced
    values: int = 0  # values written (after resizing): what `clipped` is counted among


@dataclass(frozen=True)
class Manifest:
    """What a prepped dataset holds: its classes, its instance maps and its items per split."""

    kind: Literal["labels", "rgb", "field"]
    label_nc: int  # 0 for RGB inputs and measured fields
    instance: bool
    multiple: int  # every size is a multiple of this
    splits: dict[str, ManifestSplit]
    schema_version: int = SCHEMA_VERSION  # another version is refused by the reader
    label_nc_inferred: bool = False
    class_names: tuple[str, ...] = ()  # () when unknown
    dataset: str = ""  # a known dataset's name (p2phd.datasets), or ""
    unlabeled: int | None = None  # the dataset's unlabeled id, when it has one
    class_divisor: int = 1000  # object instance ids are class * this + k
    source: str = ""
    source_layout: str = ""
    skipped: tuple[Skipped, ...] = field(default=())
    fields: FieldSpec | None = None  # measured fields: how each side maps to [-1, 1]
    field_stats: dict[str, FieldStats] = field(default_factory=dict)  # "input", "output"

    def __post_init__(self) -> None:
        if self.label_nc < 0 or (self.kind != "labels") != (self.label_nc == 0):
            raise ConfigError(f"label_nc: {self.label_nc} does not fit kind {self.kind!r}")
        if (self.kind == "field") != (self.fields is not None):
            raise ConfigError(f"fields: a {self.kind!r} dataset has them only for 'field'")
        if self.multiple < 1 or self.class_divisor < 1:
            raise ConfigError("multiple and class_divisor must be whole numbers >= 1")
        if self.class_names and len(self.class_names) != self.label_nc:
            raise ConfigError(
                f"class_names: {len(self.class_names)} names for label_nc {self.label_nc}; "
                "list one name per class"
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise ConfigError("class_names: a name is listed twice")
        if self.unlabeled is not None and not 0 <= self.unlabeled < max(self.label_nc, 1):
            raise ConfigError(f"unlabeled: {self.unlabeled} is not a class of {self.label_nc}")
        for split, entry in self.splits.items():
            sizes = {(i.width, i.height) for i in entry.items}
            if any(w % self.multiple or h % self.multiple for w, h in sizes):
                raise ConfigError(f"splits.{split}: a size is not a multiple of {self.multiple}")

    def to_json(self) -> str:
        """The file's text: the schema version first, then the fields in the order above."""
        data = dataclasses.asdict(self)
        return json.dumps({"schema_version": data.pop("schema_version"), **data}, indent=2) + "\n"


def read_manifest(data: Path) -> Manifest:
    """`data/dataset.json`, checked in every field; a `DatasetError` naming the field if not."""
    path = Path(data) / MANIFEST
    fix = f"run p2phd prep first (p2phd prep SOURCE {data})"
    if not path.is_file() and not path.exists():
        raise DatasetError(f"{path}: not found, {data} is not a prepped dataset; {fix}")
    return read_typed(path, Manifest, DatasetError, fix)
