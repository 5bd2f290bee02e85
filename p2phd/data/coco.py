"""COCO-Stuff 2017 as it unpacks: its label values as class ids, and instance maps drawn from
COCO's instance annotations (`p2phd prep --coco-instances annotations/instances_*.json`).

Class ids are COCO-Stuff's own (its labels.txt): 0 unlabeled, 1..182, so a thing's class id
is its COCO category id. The stuffthingmaps PNGs store id - 1, and 255 for unlabeled.

Instance ids follow Cityscapes' convention with a smaller divisor: a stuff pixel (and a
crowd region, as Cityscapes keeps its groups) holds its class id; an object holds
`class * 256 + k`, k numbering that class's objects in the image from 0 in annotation order
(later annotations drawn over earlier ones). 256 rather than 1000 keeps the largest id,
182 * 256 + 255, within a 16-bit PNG; `dataset.json` records the divisor and runs take it.
An object keeps only the pixels the label map gives its class (one with none gets no
number), so the class of every instance id is the label under it. Polygons of fewer than
three points are no shape and are left out, as detectron2 leaves them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from p2phd.data.names import name_key
from p2phd.errors import DatasetError
from p2phd.jsonfile import SchemaError, read_json

COCO_DIVISOR = 256
LAST_THING = 91  # category ids above are COCO-Stuff's stuff classes, which are no objects
COCO_MAX_BYTES = 4 << 30  # instances_train2017.json is 448 MiB
MAX_SIDE = 1 << 14  # COCO's images are 640 at most; a claimed side beyond is no COCO image
# An outline's length, in sides of its image: pycocotools draws a polygon by walking its
# outline five times finer, so a million points (or one far-off point) exhaust the memory of
# any machine and crashed prep in pycocotools' C. Real outlines are a few sides long.
MAX_OUTLINE_SIDES = 1000
_NEED_PYCOCOTOOLS = "pip install 'p2phd[coco]' (pycocotools) to draw COCO's instance maps"


@dataclass(frozen=True)
class ImageObjects:
    """The non-crowd objects COCO annotates on one image, as its JSON gives them."""

    source: str  # the annotation file, for messages
    image_id: int
    height: int
    width: int
    objects: tuple[tuple[int, Any], ...]  # (category id, segmentation) in annotation order


def load_instances(paths: tuple[str, ...]) -> dict[str, ImageObjects]:
    """Image key (its file name's stem) -> its objects, from COCO instance annotation files
    (each image in one file only)."""
    _pycocotools()  # before reading a file of half a gigabyte
    found: dict[str, ImageObjects] = {}
    for name in paths:
        images, annotations = _read(Path(name))
        objects: dict[int, list[tuple[int, Any]]] = {}
        for image in images:
            if image["id"] in objects:  # objects would go to the wrong image
                raise DatasetError(
                    f"--coco-instances {name}: image id {image['id']} is given twice; pass "
                    "the file as COCO ships it"
                )
            objects[image["id"]] = []
        for ann in annotations:
            category = ann["category_id"]
            if category > LAST_THING:
                raise DatasetError(
                    f"--coco-instances {name}: category {category} is a stuff class, not an "
                    "object's; pass COCO's instances_*.json, not stuff_*.json"
                )
            if ann["image_id"] not in objects:
                raise DatasetError(
                    f"--coco-instances {name}: an annotation of image {ann['image_id']}, "
                    "which the file does not list; pass the file as COCO ships it"
                )
            if not ann.get("iscrowd", 0):
                objects[ann["image_id"]].append((category, ann["segmentation"]))
        for image in images:
            key = name_key(Path(str(image["file_name"])).name)
            if key in found:
                raise DatasetError(
                    f"--coco-instances {name}: image {key} is in {found[key].source} too; "
                    "pass each split's annotation file once"
                )
            ident = image["id"]
            found[key] = ImageObjects(
                name, ident, image["height"], image["width"], tuple(objects[ident])
            )
    return found


def _pycocotools() -> Any:
    """pycocotools' mask module, or the one line that says how to install it."""
    try:
        from pycocotools import mask as coco_mask
    except ImportError:
        raise DatasetError(f"--coco-instances: {_NEED_PYCOCOTOOLS}") from None
    return coco_mask


def _read(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The images and annotations of one file, their fields checked (the segmentations are
    checked as they are drawn)."""
    fix = "pass COCO's annotations/instances_{train,val}2017.json"
    try:
        data = read_json(path, max_bytes=COCO_MAX_BYTES)
    except FileNotFoundError:
        raise DatasetError(f"--coco-instances {path}: not found; {fix}") from None
    except (OSError, SchemaError) as exc:
        raise DatasetError(f"--coco-instances {path}: unreadable ({exc}); {fix}") from None
    try:
        images, annotations = _field(data, "images", list), _field(data, "annotations", list)
        for n, image in enumerate(images):
            where = f"images[{n}]"
            _field(image, "file_name", str, where)
            _field(image, "id", int, where)
            for side in ("height", "width"):
                if not 1 <= _field(image, side, int, where) <= MAX_SIDE:
                    raise SchemaError(f"{where}.{side}: {image[side]} is not in 1..{MAX_SIDE}")
        for n, ann in enumerate(annotations):
            where = f"annotations[{n}]"
            _field(ann, "image_id", int, where)
            if _field(ann, "category_id", int, where) < 1:
                raise SchemaError(f"{where}.category_id: {ann['category_id']} is no category")
            _field(ann, "segmentation", (list, dict), where)
            if ann.get("iscrowd", 0) not in (0, 1):
                raise SchemaError(f"{where}.iscrowd: {ann['iscrowd']!r} is not 0 or 1")
    except SchemaError as exc:
        raise DatasetError(
            f"--coco-instances {path}: not a COCO instance annotation file ({exc}); {fix}"
        ) from None
    return images, annotations


def _field(record: Any, key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    """`record[key]`, checked to be of `kind` (a bool is no int)."""
    name = f"{where}.{key}" if where else key
    if not isinstance(record, dict):
        raise SchemaError(f"{where or 'the file'}: expected an object")
    if key not in record:
        raise SchemaError(f"missing {name!r}")
    value = record[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SchemaError(f"{name}: {str(value)[:30]!r} is not of the expected type")
    return value


def instance_map(label: np.ndarray, image: ImageObjects, label_path: Path) -> np.ndarray:
    """The instance map of one image (see the module's docstring) for its class-id `label`."""
    coco_mask = _pycocotools()
    height, width = label.shape
    if (image.height, image.width) != (height, width):
        raise DatasetError(
            f"{label_path}: label map is {width}x{height} but {image.source} annotates image "
            f"{image.image_id} as {image.width}x{image.height}; pass the annotation file of "
            "this COCO release"
        )
    inst = label.copy()
    count: dict[int, int] = {}
    for category, segmentation in image.objects:
        try:
            mask = _decode(coco_mask, segmentation, height, width)
        except _MaskSizeError as exc:
            raise DatasetError(
                f"{image.source}: an annotation of image {image.image_id} is a mask of "
                f"{exc.size[1]}x{exc.size[0]}, the image is {width}x{height}; pass the "
                "file as COCO ships it"
            ) from None
        except Exception as exc:  # pycocotools raises bare Exceptions on malformed input
            raise DatasetError(
                f"{image.source}: an annotation of image {image.image_id} cannot be drawn "
                f"({exc}); pass the file as COCO ships it"
            ) from None
        if mask.shape != (height, width):
            raise DatasetError(
                f"{image.source}: an annotation of image {image.image_id} is a mask of "
                f"{mask.shape[1]}x{mask.shape[0]}, the image is {width}x{height}; pass the "
                "file as COCO ships it"
            )
        pixels = mask & (label == category)
        if not pixels.any():
            continue
        k = count.get(category, 0)
        if k >= COCO_DIVISOR:
            raise DatasetError(
                f"{label_path}: more than {COCO_DIVISOR} objects of class {category}; such an "
                "image cannot be numbered in 16 bits, remove it from the source"
            )
        inst[pixels] = category * COCO_DIVISOR + k
        count[category] = k + 1
    return inst


def _decode(coco_mask: Any, segmentation: Any, height: int, width: int) -> np.ndarray:
    """One annotation's mask: polygons, uncompressed RLE or compressed RLE, each checked
    before pycocotools' C sees it (it trusts what it is given: sizes, counts, outlines)."""
    if isinstance(segmentation, list):  # polygons; pycocotools reads 4 numbers as a box
        polygons = [p for p in segmentation if isinstance(p, list)]
        if len(polygons) != len(segmentation):
            raise ValueError("a polygon is a list of numbers")
        polygons = [p for p in polygons if len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            return np.zeros((height, width), bool)
        _check_outline(polygons, height, width)
        rle = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
    else:
        size = segmentation.get("size")
        if size != [height, width]:
            if not (
                isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size)
            ):
                raise ValueError(f"an RLE size is [height, width], not {str(size)[:30]}")
            raise _MaskSizeError(size)
        counts = segmentation.get("counts")
        runs = counts if isinstance(counts, list) else _string_counts(counts)
        if not all(type(r) is int and r >= 0 for r in runs) or sum(runs) != height * width:
            raise ValueError(f"its RLE counts do not cover the {width}x{height} mask")
        if isinstance(counts, list):  # uncompressed RLE
            rle = coco_mask.frPyObjects(segmentation, height, width)
        else:
            rle = {"size": size, "counts": counts.encode() if isinstance(counts, str) else counts}
    return np.asarray(coco_mask.decode(rle), dtype=bool)


class _MaskSizeError(ValueError):
    """An RLE mask of a size other than its image's."""

    def __init__(self, size: list[int]) -> None:
        super().__init__(size)
        self.size = size


def _check_outline(polygons: list[list[Any]], height: int, width: int) -> None:
    """Polygons of finite numbers near the image, of an outline pycocotools can draw."""
    try:
        points = [np.asarray(p, np.float64).reshape(-1, 2) for p in polygons]
    except (TypeError, ValueError):
        raise ValueError("a polygon holds something other than numbers") from None
    steps = 0.0
    for p in points:
        if not np.isfinite(p).all():
            raise ValueError("a polygon holds a value that is not finite")
        if (np.abs(p - [width / 2, height / 2]) > [1.5 * width, 1.5 * height]).any():
            raise ValueError(f"a polygon reaches far outside the {width}x{height} image")
        steps += float(np.abs(np.diff(np.vstack([p, p[:1]]), axis=0)).max(axis=1).sum())
    if not math.isfinite(steps) or steps > MAX_OUTLINE_SIDES * (height + width):
        raise ValueError(
            f"its outline is {steps:.3g} pixels long, more than {MAX_OUTLINE_SIDES} times the "
            "image's sides"
        )


def _string_counts(counts: Any) -> list[int]:
    """The runs of COCO's compressed RLE string (pycocotools' rleFrString, in Python)."""
    if not isinstance(counts, str | bytes):
        raise ValueError("its RLE counts are neither a list nor a string")
    text = counts.encode() if isinstance(counts, str) else counts
    runs: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            if p >= len(text):
                raise ValueError("its RLE string is cut short")
            c = text[p] - 48
            if not 0 <= c < 64:
                raise ValueError("its RLE string holds a character COCO never writes")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs
