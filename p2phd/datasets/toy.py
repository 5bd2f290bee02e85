"""p2phd's own toy scenes (`p2phd toy`): eight classes, cars and persons as objects; a source
folder is recognised by the `toy.json` the toy writes beside its reference layout."""

from __future__ import annotations

from pathlib import Path

from p2phd.data.names import check_class_names
from p2phd.data.pairing import Source
from p2phd.datasets import KnownDataset
from p2phd.errors import DatasetError
from p2phd.jsonfile import SchemaError, read_json

# The toy world: its classes, and the colours the scenes (p2phd.data.toy) are painted in and
# the toy's oracle segmenter (p2phd.data.toy_segmenter) reads back.
TOY_CLASSES = ("sky", "road", "sidewalk", "building", "vegetation", "pole", "car", "person")
TOY_LABEL_NC = len(TOY_CLASSES)
SKY, ROAD, SIDEWALK, BUILDING, VEGETATION, POLE, CAR, PERSON = range(TOY_LABEL_NC)
THING_CLASSES = (CAR, PERSON)
# red, blue, yellow, white: at least 160 apart in RGB, and far from the grey road
CAR_PALETTE = ((220, 40, 40), (40, 80, 220), (235, 200, 40), (235, 235, 230))
PERSON_PALETTE = ((40, 160, 80), (160, 50, 170), (245, 140, 30))  # shirts: green purple orange
WALLS = ((150, 105, 85), (190, 180, 160), (115, 120, 135), (170, 150, 115))
GLASS = (60, 75, 100)
WINDSCREEN = (120, 150, 190)  # light, so a car's mean colour stays near its palette


def _recognise(source: Source) -> tuple[str, ...] | None:
    """The classes of the toy.json beside a reference layout of label maps."""
    return _folder_classes(source.root) if source.kind == "labels" else None


def _folder_classes(folder: Path) -> tuple[str, ...] | None:
    """The classes of the toy.json in a source folder, or None when it holds none."""
    toy = folder / "toy.json"
    if not toy.is_file():
        return None
    try:
        classes = read_json(toy, max_bytes=1 << 20).get("classes")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            return None
        return check_class_names(classes, str(toy))
    except (OSError, SchemaError, AttributeError, DatasetError):
        return None  # not ours after all: the classes are inferred


DATASET = KnownDataset(
    name="toy",
    classes=TOY_CLASSES,
    summary="the toy's classes",
    recognise=_recognise,
    folder_classes=_folder_classes,
)
