"""One random resize/crop/flip per sample, applied identically to every map of the sample.

Parameters come from an explicit numpy generator seeded by (seed, epoch, index), so a sample
is the same whatever the number of loader workers, and resuming mid-epoch needs only the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from p2phd.data.fields import resize_field
from p2phd.data.io import resize_ids, resize_rgb
from p2phd.errors import ConfigError


def round_to(value: int, multiple: int) -> int:
    """The nearest multiple of `multiple`, halves up, and at least one multiple."""
    return max(multiple, (2 * value + multiple) // (2 * multiple) * multiple)


def scaled_size(width: int, height: int, new_width: int | None, multiple: int) -> tuple[int, int]:
    """The one size rule of prep --width, --load-width and synthesize --width: the width
    becomes `new_width` (or stays), the height keeps the aspect ratio, and both are rounded
    to the nearest multiple of `multiple`, halves up, at least one multiple. Integer
    arithmetic, so every machine gets the same size: 128x80 at width 128 and multiple 32 is
    128x96 (80 / 32 = 2.5 rounds up)."""
    if new_width is None:
        return round_to(width, multiple), round_to(height, multiple)
    out_width = round_to(new_width, multiple)
    halves_up = (2 * height * out_width + width * multiple) // (2 * width * multiple)
    return out_width, max(multiple, halves_up * multiple)


@dataclass(frozen=True, slots=True)
class AugmentParams:
    width: int  # size after the load resize
    height: int
    crop: tuple[int, int, int, int] | None  # x, y, width, height
    flip: bool
    angle: float = 0.0  # degrees, counter-clockwise (measured fields' --rotate)


@dataclass(frozen=True, slots=True)
class Augment:
    """The reference's scale_width(_and_crop) and flip, with sizes kept to `multiple`."""

    load_width: int | None
    crop_size: int | None
    flip: bool
    multiple: int
    rotate: float = 0.0  # a random angle in [-rotate, rotate] degrees (measured fields)

    def load_size(self, width: int, height: int) -> tuple[int, int]:
        """Size after the load resize: `load_width` wide, height rounded to the multiple."""
        if self.load_width is None:
            return width, height
        return scaled_size(width, height, self.load_width, self.multiple)

    def draw(self, rng: np.random.Generator, width: int, height: int) -> AugmentParams:
        w, h = self.load_size(width, height)
        crop = None
        if self.crop_size is not None:
            c = self.crop_size
            if c > w or c > h:
                raise ConfigError(
                    f"--crop-size {c} is larger than the {w}x{h} training images; "
                    "use a smaller crop or a larger --load-width"
                )
            crop = (int(rng.integers(0, w - c + 1)), int(rng.integers(0, h - c + 1)), c, c)
        flip = bool(self.flip and rng.random() < 0.5)
        angle = float(rng.uniform(-self.rotate, self.rotate)) if self.rotate else 0.0
        return AugmentParams(w, h, crop, flip, angle)


def apply_ids(params: AugmentParams, ids: np.ndarray) -> np.ndarray:
    """Resize (nearest), crop and flip an `[H, W]` id map."""
    return _crop_flip(params, resize_ids(ids, params.width, params.height))


def apply_rgb(params: AugmentParams, image: np.ndarray) -> np.ndarray:
    """Resize (bicubic), crop and flip an `[H, W, 3]` uint8 photo."""
    return _crop_flip(params, resize_rgb(image, params.width, params.height))


def apply_field(params: AugmentParams, values: np.ndarray, fill: float) -> np.ndarray:
    """Resize (area shrinking, bilinear enlarging), rotate (bilinear; corners brought in
    take `fill`), crop and flip a `[C, H, W]` float field."""
    resized = resize_field(values, params.width, params.height)
    if params.angle:
        resized = rotate_field(resized, params.angle, fill)
    c = params.crop
    cropped = resized if c is None else resized[:, c[1] : c[1] + c[3], c[0] : c[0] + c[2]]
    if params.flip:
        cropped = cropped[:, :, ::-1]
    return np.ascontiguousarray(cropped, dtype=np.float32)


def rotate_field(values: np.ndarray, degrees: float, fill: float) -> np.ndarray:
    """`[C, H, W]` turned `degrees` counter-clockwise about its centre, in pixel space
    (not stretched by the aspect ratio), bilinear; where no source pixel is, `fill`."""
    _, h, w = values.shape
    a = np.deg2rad(degrees)
    cos, sin = float(np.cos(a)), float(np.sin(a))
    # affine_grid works in [-1, 1] per axis: undo the aspect ratio around the rotation
    theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]])[None]
    x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None] - fill
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    turned = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (turned[0] + fill).numpy()


def _crop_flip(params: AugmentParams, array: np.ndarray) -> np.ndarray:
    if params.crop is not None:
        x, y, w, h = params.crop
        array = array[y : y + h, x : x + w]
    if params.flip:
        array = array[:, ::-1]
    return np.ascontiguousarray(array)
