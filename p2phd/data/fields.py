"""Measured fields (magnetograms, MR and CT slices, SAR): float or integer arrays in, the same
units out, never through 8 bits.

Files: `.npy` (numpy, never pickled objects), `.tif`/`.tiff` (tifffile: float32, 16-bit,
multi-channel), `.fits`/`.fit`/`.fts` (astropy, the `p2phd[fits]` extra; the first HDU with
image data, its header kept) and PNG (16-bit grey as medical users export it). An array is
`[H, W]` (one channel) or `[C, H, W]`; TIFF and PNG store channels last, `[H, W, C]`, and are
turned round.

Each side of a dataset maps its physical values to [-1, 1] by a `FieldScale` (config.py):
linear between saturation limits, after a log10 or an asinh where asked. prep normalises and
writes float32 `.npy`; synthesize maps G's output back (`physical`), an exact inverse inside
the limits up to float rounding.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from p2phd.atomic import atomic_path
from p2phd.config import FieldScale
from p2phd.data.io import open_image
from p2phd.errors import ConfigError, DatasetError

NPY, TIFF, FITS = (".npy",), (".tif", ".tiff"), (".fits", ".fit", ".fts")
FIELD_SUFFIXES = (*NPY, *TIFF, *FITS, ".png")
_CHANNELS_LAST_MAX = 4  # a TIFF/PNG array [H, W, C] has at most this many channels


def is_field_file(path: Path) -> bool:
    """Whether `path` holds measurements rather than an 8-bit photo: .npy and FITS always;
    TIFF and PNG when their samples are not 8-bit (read from the header only)."""
    suffix = path.suffix.lower()
    if suffix in NPY or suffix in FITS:
        return True
    if suffix in TIFF:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                return np.dtype(tif.series[0].dtype) != np.uint8
        except Exception:  # unreadable: read_field names the file later
            return True
    if suffix == ".png":
        from PIL import Image

        try:
            with Image.open(path) as image:
                return image.mode in ("I;16", "I;16L", "I;16B", "I", "F")
        except Exception:
            return False
    return False


def read_field(path: str | os.PathLike[str]) -> np.ndarray:
    """`[C, H, W]` float64 values of a field file, as measured (dtype checked; NaN and inf
    are left for `check_finite`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in NPY:
        array = read_npy(path)
    elif suffix in TIFF:
        import tifffile

        try:
            array = tifffile.imread(path)
        except Exception as exc:  # tifffile raises many kinds
            raise DatasetError(f"{path}: not a readable TIFF ({_first(exc)})") from None
        array = _channels_first(array)
    elif suffix in FITS:
        array, _ = read_fits(path)
    else:
        array = _channels_first(np.asarray(open_image(path)))
    return _checked(path, np.asarray(array))


def read_npy(path: Path) -> np.ndarray:
    """A `.npy` array, never unpickling objects (a pickled array is refused in one line)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(
            f"{path}: not a readable .npy array ({_first(exc)}); save it with numpy.save"
        ) from None


def read_fits(path: Path) -> tuple[np.ndarray, Any]:
    """The first HDU of `path` with image data, and its header."""
    fits = astropy_fits()
    # astropy warns of a truncated file on stderr, then fails to reshape its data: its
    # warning is the reason given, and a file that reads is not warned about
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            with fits.open(path, memmap=False) as hdus:
                for hdu in hdus:
                    if hdu.data is not None and getattr(hdu.data, "ndim", 0) >= 2:
                        return np.array(hdu.data), hdu.header.copy()
        except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError) as exc:
            said = [str(w.message).splitlines()[0] for w in warned if str(w.message).strip()]
            reason = said[0] if said else _first(exc)
            raise DatasetError(f"{path}: not a readable FITS file ({reason})") from None
    raise DatasetError(f"{path}: a FITS file without image data; give an image HDU")


def check_finite(path: Path, values: np.ndarray, fill: float | None) -> tuple[np.ndarray, int]:
    """NaN and inf refused (naming the count and the first pixel), or replaced by `fill`;
    returns the values and how many were filled."""
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if not count:
        return values, 0
    if fill is None:
        c, y, x = (int(i) for i in np.argwhere(bad)[0])
        raise DatasetError(
            f"{path}: {count} NaN or inf values (the first at channel {c}, x={x}, y={y}); "
            "fix the file or pass --fill VALUE to replace them"
        )
    values = values.copy()
    values[bad] = fill
    return values, count


def normalise(scale: FieldScale, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Physical values -> float32 in [-1, 1] by `scale`, and how many were clipped."""
    clipped = int(((values < scale.low) | (values > scale.high)).sum())
    inside = np.clip(values, scale.low, scale.high)
    lo, hi = _forward(scale, np.array([scale.low, scale.high]))
    unit = (_forward(scale, inside) - lo) / (hi - lo)
    return (unit * 2 - 1).astype(np.float32), clipped


def zero_of(scale: FieldScale) -> float:
    """Physical 0 in [-1, 1] (the low limit where 0 lies below it): what a rotation brings
    into the corners."""
    return float(normalise(scale, np.zeros((1, 1, 1)))[0][0, 0, 0])


def physical(scale: FieldScale, normalised: np.ndarray) -> np.ndarray:
    """The inverse of `normalise` (float64): values in [-1, 1] -> physical units."""
    lo, hi = _forward(scale, np.array([scale.low, scale.high]))
    mapped = (np.clip(normalised.astype(np.float64), -1, 1) + 1) / 2 * (hi - lo) + lo
    if scale.scale == "log":
        return np.power(10.0, mapped)
    if scale.scale == "asinh":
        return np.sinh(mapped)
    return mapped


def resize_field(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """`[C, H, W]` in physical units, resized by area (shrinking) or bilinear (enlarging)."""
    c, h, w = values.shape
    if (w, h) == (width, height):
        return values
    x = torch.from_numpy(np.ascontiguousarray(values))[None]
    if width <= w and height <= h:
        y = F.interpolate(x, size=(height, width), mode="area")
    else:
        y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return y[0].numpy()


def write_field(
    path: str | os.PathLike[str], values: np.ndarray, header: Any = None, history: str = ""
) -> None:
    """`[C, H, W]` physical values into `path`, in the format its suffix names (float32; a
    16-bit PNG rounds and clips to 0..65535); FITS keeps `header` and adds `history`."""
    path = Path(path)
    suffix = path.suffix.lower()
    data = np.asarray(values).astype(np.float32)
    data = data[None] if data.ndim == 2 else data
    with atomic_path(path) as tmp:
        if suffix in NPY:
            with open(tmp, "wb") as f:
                np.save(f, data[0] if len(data) == 1 else data)
        elif suffix in TIFF:
            import tifffile

            if len(data) == 1:
                tifffile.imwrite(tmp, data[0])
            else:  # [C, H, W] planes, as read back
                tifffile.imwrite(tmp, data, photometric="minisblack", planarconfig="separate")
        elif suffix in FITS:
            fits = astropy_fits()
            hdu = fits.PrimaryHDU(data[0] if len(data) == 1 else data, header=header)
            if history:
                hdu.header.add_history(history)
            hdu.writeto(tmp, overwrite=True)
        else:
            from PIL import Image

            if len(data) != 1:
                raise ConfigError(f"{path}: a 16-bit PNG holds one channel, not {len(data)}")
            wide = np.asarray(values, np.float64).reshape(data.shape)[0]
            ints = np.clip(np.round(wide), 0, 65535).astype(np.uint16)
            Image.fromarray(ints).save(tmp, format="PNG")


def describe_scale(scale: FieldScale) -> str:
    """'1 channel, linear in [-3000, 3000] G': one side's mapping, for reports."""
    channels = f"{scale.channels} channel{'s' if scale.channels > 1 else ''}"
    units = f" {scale.units}" if scale.units else ""
    return f"{channels}, {scale.scale} in [{scale.low:g}, {scale.high:g}]{units}"


def _forward(scale: FieldScale, values: np.ndarray) -> np.ndarray:
    if scale.scale == "log":
        return np.log10(values)
    if scale.scale == "asinh":
        return np.arcsinh(values)
    return values.astype(np.float64)


def _checked(path: Path, array: np.ndarray) -> np.ndarray:
    """Real numbers only, `[H, W]` or `[C, H, W]`, as float64 `[C, H, W]`."""
    if array.dtype.kind not in "buif":
        raise DatasetError(
            f"{path}: values of dtype {array.dtype} are no measurements; store real numbers "
            "(integers or floats)"
        )
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or min(array.shape[1:]) < 1:
        raise DatasetError(
            f"{path}: an array of shape {tuple(array.shape)}; give [H, W] or [C, H, W]"
        )
    return array.astype(np.float64)


def _channels_first(array: np.ndarray) -> np.ndarray:
    """TIFF and PNG keep channels last ([H, W, C], C <= 4); others are taken as they are."""
    if array.ndim == 3 and array.shape[-1] <= _CHANNELS_LAST_MAX < array.shape[0]:
        return np.moveaxis(array, -1, 0)
    return array


def astropy_fits() -> Any:
    if importlib.util.find_spec("astropy") is None:
        raise ConfigError("FITS files need astropy: pip install 'p2phd[fits]'")
    from astropy.io import fits  # type: ignore[import-untyped]

    return fits


def _first(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
