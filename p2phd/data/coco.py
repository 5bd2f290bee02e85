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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from p2phd.data.names import name_key
from p2phd.errors import DatasetError

COCO_DIVISOR = 256
LAST_THING = 91  # category ids above are COCO-Stuff's stuff classes, which are no objects
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
        objects: dict[int, list[tuple[int, Any]]] = {int(i["id"]): [] for i in images}
        for ann in annotations:
            category = int(ann["category_id"])
            if category > LAST_THING:
                raise DatasetError(
                    f"--coco-instances {name}: category {category} is a stuff class, not an "
                    "object's; pass COCO's instances_*.json, not stuff_*.json"
                )
            if not ann.get("iscrowd", 0) and int(ann["image_id"]) in objects:
                objects[int(ann["image_id"])].append((category, ann["segmentation"]))
        for image in images:
            key = name_key(Path(str(image["file_name"])).name)
            if key in found:
                raise DatasetError(
                    f"--coco-instances {name}: image {key} is in {found[key].source} too; "
                    "pass each split's annotation file once"
                )
            ident = int(image["id"])
            found[key] = ImageObjects(
                name, ident, int(image["height"]), int(image["width"]), tuple(objects[ident])
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
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DatasetError(f"--coco-instances {path}: not found; {fix}") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"--coco-instances {path}: unreadable ({exc}); {fix}") from None
    try:
        images, annotations = data["images"], data["annotations"]
        for image in images:
            str(image["file_name"]), int(image["id"]), int(image["height"]), int(image["width"])
        for ann in annotations:
            int(ann["image_id"]), int(ann["category_id"]), ann["segmentation"]
    except (KeyError, TypeError, ValueError) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise DatasetError(
            f"--coco-instances {path}: not a COCO instance annotation file ({what}); {fix}"
        ) from None
    return images, annotations


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
    """One annotation's mask: polygons, uncompressed RLE or compressed RLE."""
    if isinstance(segmentation, list):  # polygons; pycocotools reads 4 numbers as a box
        polygons = [p for p in segmentation if len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            return np.zeros((height, width), bool)
        rle = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
    elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
        rle = coco_mask.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return np.asarray(coco_mask.decode(rle), dtype=bool)
