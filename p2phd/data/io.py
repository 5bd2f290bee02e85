"""Reading and writing the images p2phd uses, exactly and safely.

Id maps (labels, instances) are read with numpy as int64, never through a float or int16
path: 16-bit Cityscapes instance ids such as 33001 survive (the reference's loader turns
ids >= 32768 negative). Unreadable,
truncated and decompression-bomb files become a `DatasetError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

from p2phd.atomic import atomic_path
from p2phd.errors import DatasetError, LabelRangeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
_ID_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I", "1")
MAX_ID = 65535  # ids are stored in 16-bit PNGs


def not_there(path: Path) -> str:
    """Why `path` is neither a file nor a folder to read, in words: not there, a link to
    nothing, or something else (a device such as /dev/zero, a pipe, a socket)."""
    if path.is_symlink() and not path.exists():
        return f"links to {os.readlink(path)}, which does not exist"
    if path.exists():
        return "is not a regular file or folder (a device, a pipe or a socket)"
    return "no such file or folder"


def open_image(path: Path) -> Image.Image:
    """Open and fully decode `path`; bad files raise a one-line `DatasetError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(
            f"{path}: refused as a possible decompression bomb ({str(exc).split(',')[0]}); "
            "remove the file or shrink the image"
        ) from exc
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"{path}: not a readable image ({exc}); re-export or remove the file"
        ) from exc
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc}); re-export or remove it") from exc


def read_id_map(path: Path, what: str = "label map") -> np.ndarray:
    """A single-channel map of integer ids as an int64 `[H, W]` array.

    Palette (P) images give their indices. RGB images are refused: a colour-coded label map
    would silently become wrong classes.
    """
    image = open_image(path)
    if image.mode not in _ID_MODES:
        raise DatasetError(
            f"{path}: {what} has mode {image.mode} (colour-coded?); it must hold one id per "
            f"pixel in a single 8- or 16-bit channel: convert the colours to ids"
            + (
                " (prep --palette FILE reads colour-coded label maps)"
                if what == "label map"
                else ""
            )
        )
    return np.asarray(image).astype(np.int64)


def check_ids(
    path: Path,
    ids: np.ndarray,
    role: Literal["label", "inst"],
    label_nc: int | None = None,
    fix: str = "fix the map",
    divisor: int | None = None,
    objects_only: bool = True,
) -> np.ndarray:
    """The one check of an id map's values: ids are >= 0 and fit 16 bits, labels are
    < `label_nc` (when given), and so are the classes of instance ids numbered by
    `divisor` (class * divisor + k; an object of a class past label_nc would index past the
    nets' one-hot and the style bank). Ids below the divisor are classes too where
    instance features read them so (not `objects_only`); elsewhere they may be any
    numbering that only draws boundaries. `fix` ends the out-of-range message; `{top}` in
    it becomes the smallest label_nc that would hold the map."""
    low, top = (int(ids.min()), int(ids.max())) if ids.size else (0, 0)
    what = "label value" if role == "label" else "instance id"
    if low < 0:
        raise DatasetError(f"{path}: {what} {low} is negative; ids start at 0: fix the map")
    if role == "label" and label_nc is not None and top >= label_nc:
        raise LabelRangeError(
            f"{path}: label value {top} >= label_nc {label_nc}; " + fix.format(top=top + 1), top
        )
    if top > MAX_ID:
        raise DatasetError(
            f"{path}: {what} {top} is above {MAX_ID}; ids must fit 16 bits: renumber them"
        )
    if role == "inst" and label_nc is not None and divisor is not None and ids.size:
        ident, cls = top_instance_class(ids, divisor, objects_only)
        if cls >= label_nc:
            raise DatasetError(
                f"{path}: instance id {ident} belongs to class {cls}, past the {label_nc} "
                f"classes (ids are class * {divisor} + k); use instance maps of these classes"
            )
    return ids


def top_instance_class(ids: np.ndarray, divisor: int, objects_only: bool = True) -> tuple[int, int]:
    """(id, class) of the instance id of the largest class, (-1, -1) for none: ids from
    `divisor` on are class * divisor + k; those below are their class unless
    `objects_only`."""
    top = int(ids.max()) if ids.size else -1
    best = (top, top // divisor) if top >= divisor else (-1, -1)
    if not objects_only:
        below = ids[ids < divisor]
        plain = int(below.max()) if below.size else -1
        if plain > best[1]:
            best = (plain, plain)
    return best


def read_rgb(path: Path) -> np.ndarray:
    """A photo as uint8 `[H, W, 3]`; grey, palette, alpha and 16-bit inputs are converted."""
    image = ImageOps.exif_transpose(open_image(path))
    if image.mode in ("I;16", "I;16L", "I;16B", "I"):
        wide = np.asarray(image).astype(np.float64)
        image = Image.fromarray((wide / max(wide.max(), 1) * 255).round().astype(np.uint8))
    return np.array(image.convert("RGB"))  # a writable copy: torch wraps it as it is


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """An `[H, W, 3]` uint8 photo as `[H, W, channels]`: itself for 3, its luma for 1
    (ITU-R 601-2, as Pillow's "L" conversion), for runs with --input-nc / --output-nc 1."""
    if channels == 3:
        return image
    weights = np.array([19595, 38470, 7471], np.uint32)  # 0.299, 0.587, 0.114 in 16-bit
    luma = ((image.astype(np.uint32) * weights).sum(-1) + 0x8000) >> 16  # rounded, as Pillow
    return luma.astype(np.uint8)[..., None]


def resize_ids(ids: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of an id map: every output value is an input value."""
    h, w = ids.shape
    if (w, h) == (width, height):
        return ids
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return ids[rows[:, None], cols[None, :]]


def resize_rgb(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of a uint8 photo (antialiased when shrinking), as the reference."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.array(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


def write_image(path: Path, array: np.ndarray, *, quality: int = 95, durable: bool = True) -> None:
    """Write uint8 `[H, W]` (grey) or `[H, W, 3]` as the format of `path`'s suffix (`.png`
    lossless; `.jpg`, `.webp` at `quality`), atomically; not `durable`, the caller flushes
    the folder once for many files (`atomic.sync_folder`)."""
    fmt = FORMATS[path.suffix.lower().lstrip(".")]
    options = {"quality": quality} if fmt != "PNG" else {}
    with atomic_path(path, durable=durable) as tmp:
        Image.fromarray(array).save(tmp, format=fmt, **options)


def write_png(path: Path, array: np.ndarray) -> None:
    """Write uint8 `[H, W]`/`[H, W, 3]` or uint16 `[H, W]` as PNG, atomically.

    The file appears complete or not at all (temp file, flush, rename).
    """
    if array.dtype not in (np.uint8, np.uint16):  # uint16 [H, W] becomes a 16-bit PNG
        raise ValueError(f"write_png takes uint8 or uint16 arrays, got {array.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def id_map_array(ids: np.ndarray) -> np.ndarray:
    """The smallest PNG-writable dtype holding `ids` (uint8 or uint16)."""
    top = int(ids.max()) if ids.size else 0
    if ids.size and int(ids.min()) < 0:
        raise ValueError("id maps hold non-negative ids")
    if top < 256:
        return ids.astype(np.uint8)
    if top < 65536:
        return ids.astype(np.uint16)
    raise ValueError(f"ids up to {top} do not fit a 16-bit PNG")
