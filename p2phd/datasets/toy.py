"""p2phd's own toy scenes (`p2phd toy`): eight classes, cars and persons as objects; a source
folder is recognised by the `toy.json` the toy writes beside its reference layout."""

from __future__ import annotations

import json

from p2phd.data.names import check_class_names
from p2phd.data.pairing import Source
from p2phd.data.toy import TOY_CLASSES
from p2phd.datasets import KnownDataset
from p2phd.errors import DatasetError


def _recognise(source: Source) -> tuple[str, ...] | None:
    """The classes of the toy.json beside a reference layout of label maps."""
    toy = source.root / "toy.json"
    if source.kind != "labels" or not toy.is_file():
        return None
    try:
        return check_class_names(json.loads(toy.read_text())["classes"], str(toy))
    except (OSError, ValueError, KeyError, TypeError, DatasetError):
        return None  # not ours after all: the classes are inferred


DATASET = KnownDataset(
    name="toy",
    classes=TOY_CLASSES,
    summary="the toy's classes",
    recognise=_recognise,
)
