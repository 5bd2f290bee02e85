"""`p2phd toy --kind field`: a procedural pair of measured fields, for the field demo and the
tests. The input is a smooth random signed field (a Gaussian random field in "G", standard
deviation 1000, like a magnetogram); the target is a known nonlinear, blurred transform of it
with noise: 200 * blur(tanh(input / 800)) + N(0, 4). A generator that learns the transform
scores a correlation coefficient near 1 on held-out fields; one that does not, near 0.

Written in the measured-data forks' layout (`Train/Input`, `Train/Target`, `Test/Input`,
`Test/Target`) as float32 `.npy` or FITS (with BUNIT cards).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from p2phd.atomic import atomic_dir
from p2phd.data.fields import write_field
from p2phd.data.toy import check_new_folder
from p2phd.errors import ConfigError
from p2phd.limits import MAX_TOY_ITEMS, check_range, check_seed

INPUT_STD = 1000.0  # G
CORRELATION_PX = 6.0  # the input's smoothness: the Gaussian filter's sigma in pixels
TARGET_SCALE, TARGET_KNEE, TARGET_BLUR, TARGET_NOISE = 200.0, 800.0, 1.5, 4.0
FORMATS = ("npy", "fits")


def random_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth signed field: white noise filtered by a Gaussian in Fourier space, scaled
    to INPUT_STD."""
    noise = rng.standard_normal((height, width))
    filtered = _gaussian(noise, CORRELATION_PX)
    return filtered / filtered.std() * INPUT_STD


def transform(field: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The target of an input field: the known nonlinear, blurred transform, with noise."""
    squashed = np.tanh(field / TARGET_KNEE)
    noise = rng.standard_normal(field.shape) * TARGET_NOISE
    return TARGET_SCALE * _gaussian(squashed, TARGET_BLUR) + noise


def write_field_toy(
    out: Path,
    *,
    n_train: int,
    n_test: int,
    height: int,
    width: int,
    seed: int,
    file_format: str = "npy",
    progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Write the pairs into `out` (built under a temporary name, renamed when complete)."""
    if file_format not in FORMATS:
        raise ConfigError(f"--format {file_format}: use {' or '.join(FORMATS)}")
    if not (16 <= height <= 4096 and 16 <= width <= 4096):
        raise ConfigError(f"--height {height} --width {width}: toy fields are 16 to 4096 pixels")
    check_seed(seed)
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"need at least 1 training and 1 test field, got {n_train}, {n_test}")
    check_range(n_train, "--train", 1, MAX_TOY_ITEMS)
    check_range(n_test, "--test", 1, MAX_TOY_ITEMS)
    out = Path(out)
    check_new_folder(out)
    header = _header(file_format)
    with atomic_dir(out) as tmp:
        for split, count, stream in (("Train", n_train, 0), ("Test", n_test, 1)):
            for i in range(count):
                rng = np.random.default_rng([seed, stream, i])
                field = random_field(rng, height, width)
                target = transform(field, rng)
                for side, values, units in (("Input", field, "G"), ("Target", target, "a.u.")):
                    if header is not None:
                        header["BUNIT"] = units
                    path = tmp / split / side / f"field_{i:04d}.{file_format}"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_field(path, values[None], header)
                if progress:
                    progress()
    return {"out": str(out), "train": n_train, "test": n_test, "format": file_format}


def _gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    """A periodic Gaussian blur by FFT (the toy's fields wrap around; that is fine)."""
    h, w = values.shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    return np.fft.irfft2(np.fft.rfft2(values) * kernel, s=(h, w))


def _header(file_format: str) -> Any:
    if file_format != "fits":
        return None
    from p2phd.data.fields import astropy_fits

    header = astropy_fits().Header()
    header["ORIGIN"] = "p2phd toy --kind field"
    return header
