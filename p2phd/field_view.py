"""Pictures of measured fields people can read: a named colour map over the declared limits
(grey, or a diverging blue-white-red symmetric about 0 for signed fields, since a
magnetogram's sign is its content) and a colour bar with the values and units. A field is
never shown as if its values were 8-bit RGB."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from p2phd.config import FieldScale, FieldSpec
from p2phd.data.fields import physical
from p2phd.visual import hstack

# (position, RGB): ColorBrewer's RdBu, reversed (blue negative, red positive), as matplotlib's
_DIVERGING = [
    (0.0, (5, 48, 97)),
    (0.125, (33, 102, 172)),
    (0.25, (67, 147, 195)),
    (0.375, (146, 197, 222)),
    (0.5, (247, 247, 247)),
    (0.625, (244, 165, 130)),
    (0.75, (214, 96, 77)),
    (0.875, (178, 24, 43)),
    (1.0, (103, 0, 31)),
]
BAR_WIDTH = 84  # pixels of the colour bar beside a picture: the ramp and its labels


def colour_map(scale: FieldScale) -> str:
    """ "diverging" for a signed field (its limits straddle 0), else "grey"."""
    return "diverging" if scale.low < 0 < scale.high else "grey"


def display_limits(scale: FieldScale) -> tuple[float, float]:
    """The values the colour map spans: the limits, made symmetric about 0 when diverging."""
    if colour_map(scale) == "diverging":
        top = max(-scale.low, scale.high)
        return -top, top
    return scale.low, scale.high


def colourise(values: np.ndarray, scale: FieldScale) -> np.ndarray:
    """`[H, W]` physical values -> `[H, W, 3]` uint8 by the side's colour map."""
    low, high = display_limits(scale)
    if scale.scale == "log":  # shown as it is scaled: decades apart, equal steps
        values, low, high = np.log10(np.maximum(values, scale.low)), np.log10(low), np.log10(high)
    t = np.clip((values - low) / (high - low), 0, 1)
    if colour_map(scale) == "grey":
        grey = np.round(t * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    stops = np.array([p for p, _ in _DIVERGING])
    colours = np.array([c for _, c in _DIVERGING], dtype=np.float64)
    rgb = np.stack([np.interp(t, stops, colours[:, i]) for i in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)


def colour_bar(scale: FieldScale, height: int) -> np.ndarray:
    """`[height, BAR_WIDTH, 3]`: the ramp, high at the top, labelled with the limits (and 0
    when diverging) and the units."""
    low, high = display_limits(scale)
    ramp_height = max(height, 2)
    if scale.scale == "log":
        column = np.logspace(np.log10(high), np.log10(low), ramp_height)
    else:
        column = np.linspace(high, low, ramp_height)
    bar = np.full((height, BAR_WIDTH, 3), 255, dtype=np.uint8)
    bar[:, 4:16] = colourise(column[:height, None].repeat(12, axis=1), scale)
    image = Image.fromarray(bar)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    units = f" {scale.units[:8]}" if scale.units else ""
    labels = [(0, f"{high:.4g}{units}"), (height - 11, f"{low:.4g}")]
    if colour_map(scale) == "diverging":
        labels.append((height // 2 - 5, "0"))
    for y, text in labels:
        draw.text((19, max(0, y)), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def field_pictures(normalised: np.ndarray, scale: FieldScale) -> list[np.ndarray]:
    """`[C, H, W]` values in [-1, 1] -> one coloured `[H, W, 3]` picture per channel."""
    values = physical(scale, normalised)
    return [colourise(channel, scale) for channel in values]


def with_bar(pictures: Sequence[np.ndarray], scale: FieldScale, gap: int = 4) -> np.ndarray:
    """Pictures of one side in a row, its colour bar at the end."""
    height = pictures[0].shape[0]
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for picture in pictures:
        parts += [picture, spacer]
    return np.concatenate([*parts, colour_bar(scale, height)], axis=1)


def field_preview(spec: FieldSpec, inputs: np.ndarray, *outputs: np.ndarray) -> np.ndarray:
    """The one picture of a measured field everywhere (samples, synthesize, evaluate):
    input | the outputs (synthesized, then the target where there is one), each `[C, H, W]`
    in [-1, 1], every channel in its side's colour map, a colour bar after each side."""
    right = [picture for out in outputs for picture in field_pictures(out, spec.output)]
    left = with_bar(field_pictures(inputs, spec.input), spec.input)
    return hstack([left, with_bar(right, spec.output)], gap=12)
