"""Procedural street-like toy scenes with instances and per-instance car colours.

Tests, the demo and the feature-clustering check need data whose answers are known: every car
is painted in one colour of `CAR_PALETTE`, so the per-instance features pix2pixHD encodes
should cluster back into those colours (paper Sec. 3.3). Cars stand touching in a row, so
only the instance map tells them apart, which is what the boundary map is for. Class
textures depend only on the geometry (plus mild noise), so a small net can learn them.
Everything is numpy, deterministic for a seed, and scales with the image size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from p2phd.atomic import atomic_dir, write_text
from p2phd.data.io import id_map_array, write_png
from p2phd.datasets.toy import (  # the toy world's classes and colours
    BUILDING,
    CAR,
    CAR_PALETTE,
    GLASS,
    PERSON,
    PERSON_PALETTE,
    POLE,
    ROAD,
    SIDEWALK,
    SKY,
    THING_CLASSES,
    TOY_CLASSES,
    TOY_LABEL_NC,
    VEGETATION,
    WALLS,
    WINDSCREEN,
)
from p2phd.errors import ConfigError, DatasetError
from p2phd.limits import MAX_TOY_ITEMS, check_range, check_seed

_MIN_SIDE = 32
_MAX_HEIGHT, _MAX_WIDTH = 1024, 2048  # as `p2phd toy --help` says
_SPLITS = (("train", 0, "toy"), ("test", 1, "toy_test"))  # split, seed stream, name stem

Colour = Sequence[float] | np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray]
Styles = dict[int, dict[str, Any]]  # instance id -> {"class", "palette_index", "rgb"}


class ToyOptionError(ConfigError, ValueError):
    """A bad `write_toy_dataset` argument: a `ValueError` for callers, exit 2 in the CLI."""


@dataclass(frozen=True, eq=False)
class ToyScene:
    """One scene.

    `label` uint8 [H, W] holds class ids; `instance` int64 [H, W] holds Cityscapes-style ids
    (stuff: its class id; things: class_id * 1000 + k); `image` is uint8 [H, W, 3]; `styles`
    maps each car and person instance id to {"class", "palette_index", "rgb"}.
    """

    label: np.ndarray
    instance: np.ndarray
    image: np.ndarray
    styles: Styles


class _Canvas:
    """Label, instance and float image painted together, later layers on top."""

    def __init__(self, height: int, width: int) -> None:
        self.label = np.zeros((height, width), np.uint8)
        self.instance = np.zeros((height, width), np.int64)
        self.image = np.zeros((height, width, 3), np.float32)

    def paint(self, mask: np.ndarray, cls: int, colour: Colour, instance_id: int = -1) -> None:
        """`colour` is an RGB triple or `f(y, x) -> [n, 3]` over the mask's pixel coordinates."""
        self.label[mask] = cls
        self.instance[mask] = cls if instance_id < 0 else instance_id
        if callable(colour):
            ys, xs = np.nonzero(mask)
            self.image[ys, xs] = colour(ys.astype(np.float32), xs.astype(np.float32))
        else:
            self.image[mask] = colour


def _box(yy: np.ndarray, xx: np.ndarray, y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
    return (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)


def _ellipse(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float
) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _sky(y: np.ndarray, x: np.ndarray, *, ground: int) -> np.ndarray:
    t = np.clip(y / ground, 0, 1)[:, None]
    return (1 - t) * np.array([70, 130, 210], np.float32) + t * np.array([185, 210, 235])


def _facade(
    y: np.ndarray,
    x: np.ndarray,
    *,
    x0: int,
    roof: int,
    ground: int,
    wall: Sequence[int],
    cell_w: int,
    cell_h: int,
) -> np.ndarray:
    window = ((x - x0) % cell_w >= 0.4 * cell_w) & ((y - roof) % cell_h >= 0.45 * cell_h)
    window &= ((y - roof) // cell_h + 1) * cell_h <= ground - roof  # whole floors only
    return np.where(window[:, None], np.array(GLASS, np.float32), np.array(wall, np.float32))


def _foliage(y: np.ndarray, x: np.ndarray, *, unit: float) -> np.ndarray:
    blotch = np.sin(x / (2.3 * unit)) * np.sin(y / (1.7 * unit))
    blotch += 0.5 * np.sin((x + 2 * y) / (4.1 * unit))
    return np.array([70, 130, 55], np.float32) * (1 + 0.15 * blotch)[:, None]


def _tiles(y: np.ndarray, x: np.ndarray, *, ground: int, tile: int, line: int) -> np.ndarray:
    joint = (x % tile < line) | ((y - ground) % tile < line)
    return np.where(
        joint[:, None], np.array([140, 135, 128], np.float32), np.array([178, 172, 162], np.float32)
    )


def _asphalt(
    y: np.ndarray, x: np.ndarray, *, rng: np.random.Generator, lane: tuple[int, int], dash: int
) -> np.ndarray:
    grey = 95 + rng.normal(0, 5, y.shape).astype(np.float32)
    mark = (y >= lane[0]) & (y < lane[1]) & (x % (2 * dash) < dash)
    return np.where(mark[:, None], np.array([220, 220, 210], np.float32), grey[:, None] + [0, 0, 4])


def _paint_stuff(c: _Canvas, rng: np.random.Generator, ground: int, kerb: int, unit: float) -> None:
    """Sky, a band of buildings, hedges and trees on the horizon, the sidewalk and the road."""
    h, w = c.label.shape
    yy, xx = np.ogrid[:h, :w]
    c.paint(np.ones((h, w), bool), SKY, partial(_sky, ground=ground))
    x0 = 0
    while x0 < w:
        x1 = min(w, x0 + round(w * rng.uniform(0.12, 0.3)))
        x1 = w if w - x1 < 0.06 * w else x1
        kind = rng.choice(3, p=[0.7, 0.2, 0.1])  # building, hedge, open sky
        if kind == 0:
            roof = round(h * rng.uniform(0.08, 0.3))
            facade = partial(
                _facade,
                x0=x0,
                roof=roof,
                ground=ground,
                wall=WALLS[rng.integers(len(WALLS))],
                cell_w=max(3, round(5 * unit)),
                cell_h=max(3, round(6 * unit)),
            )
            c.paint(_box(yy, xx, roof, ground, x0, x1), BUILDING, facade)
        elif kind == 1:
            top = ground - h * rng.uniform(0.05, 0.12) + 2 * unit * np.sin(xx / (3 * unit))
            c.paint(
                _box(yy, xx, 0, ground, x0, x1) & (yy >= top),
                VEGETATION,
                partial(_foliage, unit=unit),
            )
        x0 = x1
    for _ in range(rng.integers(1, 4)):  # tree crowns in front of the buildings
        ry = h * rng.uniform(0.08, 0.14)
        crown = _ellipse(
            yy, xx, ground - 0.8 * ry, w * rng.uniform(0, 1), ry, ry * rng.uniform(0.9, 1.4)
        )
        c.paint(crown & (yy < ground), VEGETATION, partial(_foliage, unit=unit))
    c.paint(
        _box(yy, xx, ground, kerb, 0, w),
        SIDEWALK,
        partial(_tiles, ground=ground, tile=max(4, round(8 * unit)), line=max(1, round(unit))),
    )
    lane_y = round((kerb + h) / 2)
    lane = (lane_y, lane_y + max(1, round(h / 100)))
    c.paint(
        _box(yy, xx, kerb, h, 0, w),
        ROAD,
        partial(_asphalt, rng=rng, lane=lane, dash=max(2, round(w / 20))),
    )
    for _ in range(rng.integers(1, 3)):
        x = w * rng.uniform(0.03, 0.97)
        c.paint(
            _box(
                yy,
                xx,
                h * rng.uniform(0.1, 0.25),
                ground + 0.6 * (kerb - ground),
                x,
                x + max(1, round(w / 170)),
            ),
            POLE,
            (70, 70, 78),
        )


def _paint_persons(c: _Canvas, rng: np.random.Generator, ground: int, kerb: int) -> Styles:
    """0-3 pedestrians on the sidewalk, one per slot so none hides another."""
    h, w = c.label.shape
    yy, xx = np.ogrid[:h, :w]
    n = int(rng.integers(0, 4))
    styles: Styles = {}
    for k in range(n):
        ph = h * rng.uniform(0.14, 0.2)
        pw = max(2.0, 0.3 * ph)
        cx = w * (k + rng.uniform(0.2, 0.8)) / n
        feet = rng.uniform(ground + 0.3 * (kerb - ground), kerb)
        r = 0.11 * ph
        head = _ellipse(yy, xx, feet - ph + r, cx, r, 0.9 * r)
        torso = _box(yy, xx, feet - ph + 2 * r, feet - 0.45 * ph, cx - pw / 2, cx + pw / 2)
        legs = _box(yy, xx, feet - 0.45 * ph, feet, cx - 0.4 * pw, cx + 0.4 * pw)
        index = int(rng.integers(len(PERSON_PALETTE)))
        c.paint(head | torso | legs, PERSON, PERSON_PALETTE[index], PERSON * 1000 + k)
        c.image[head & ~torso] = (225, 185, 150)
        c.image[legs & ~torso] = (50, 50, 60)
        styles[PERSON * 1000 + k] = {
            "class": PERSON,
            "palette_index": index,
            "rgb": list(PERSON_PALETTE[index]),
        }
    return styles


def _paint_cars(c: _Canvas, rng: np.random.Generator) -> Styles:
    """2-4 big cars in a row on the road, neighbours touching (at most one gap)."""
    h, w = c.label.shape
    yy, xx = np.ogrid[:h, :w]
    n = int(rng.integers(2, 5))
    ch = h * rng.uniform(0.22, 0.26)
    bottom = round(h * rng.uniform(0.9, 0.97))
    top = round(bottom - ch)
    widths = np.clip(ch * rng.uniform(1.5, 1.9, n), 0.15 * w, 0.92 * w / n)
    gaps = np.zeros(n)  # gaps[k]: space before car k; one gap still leaves a touching pair
    if n >= 3 and rng.random() < 0.3:
        gaps[rng.integers(1, n)] = 0.04 * w
    start = rng.uniform(0, w - widths.sum() - gaps.sum()) + np.cumsum(gaps)
    rights = np.round(start + np.cumsum(widths)).astype(int)
    lefts = np.round(start + np.cumsum(widths) - widths).astype(int)
    lefts[1:] = np.where(gaps[1:] == 0, rights[:-1], lefts[1:])  # exact shared borders
    styles: Styles = {}
    for k, (x0, x1) in enumerate(zip(lefts, rights, strict=True)):
        cw, waist = x1 - x0, top + 0.4 * ch
        inset = cw * (0.25 - 0.15 * np.clip((yy - top) / (waist - top), 0, 1))  # cabin taper
        cabin = _box(yy, xx, top, waist, x0, x1) & (xx >= x0 + inset) & (xx < x1 - inset)
        windows = cabin & (yy >= top + 0.08 * ch) & (yy < top + 0.34 * ch)
        windows &= (xx >= x0 + inset + 0.05 * cw) & (xx < x1 - inset - 0.05 * cw)
        windows &= np.abs(xx - (x0 + x1) / 2) >= 0.03 * cw
        r = 0.11 * min(ch, 0.6 * cw)  # small wheels keep the mean colour near the palette
        wheels = _ellipse(yy, xx, bottom - r, x0 + 0.22 * cw, r, r)
        wheels |= _ellipse(yy, xx, bottom - r, x1 - 0.22 * cw, r, r)
        index = int(rng.integers(len(CAR_PALETTE)))
        rgb = np.array(CAR_PALETTE[index], np.float32)
        c.paint(cabin | _box(yy, xx, waist, bottom, x0, x1), CAR, rgb, CAR * 1000 + k)
        c.image[windows] = 0.65 * rgb + 0.35 * np.array(WINDSCREEN, np.float32)
        c.image[_box(yy, xx, bottom - 0.12 * ch, bottom, x0, x1)] = 0.88 * rgb  # sill
        c.image[wheels] = (30, 30, 32)
        styles[CAR * 1000 + k] = {
            "class": CAR,
            "palette_index": index,
            "rgb": list(CAR_PALETTE[index]),
        }
    return styles


def make_scene(seed: int, height: int, width: int) -> ToyScene:
    """One street scene, the same for the same (seed, height, width)."""
    if height < _MIN_SIDE or width < _MIN_SIDE:
        raise ValueError(f"toy scenes need height and width >= {_MIN_SIDE}, got {height}x{width}")
    rng = np.random.default_rng(seed)
    c = _Canvas(height, width)
    ground = round(height * rng.uniform(0.42, 0.5))  # top of the sidewalk
    kerb = ground + max(2, round(0.1 * height))  # top of the road
    _paint_stuff(c, rng, ground, kerb, unit=min(height, width) / 64)
    styles = _paint_persons(c, rng, ground, kerb) | _paint_cars(c, rng)
    noise = rng.standard_normal(c.image.shape, dtype=np.float32) * 3
    image = np.clip(c.image + noise, 0, 255).round().astype(np.uint8)
    present = set(np.unique(c.instance[c.instance >= 1000]).tolist())
    styles = {k: v for k, v in styles.items() if k in present}
    return ToyScene(label=c.label, instance=c.instance, image=image, styles=styles)


def _scene_seed(seed: int, stream: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1, np.uint64)[0])


def check_new_folder(out: Path) -> None:
    """The toys write a new folder: `out` is absent or an empty folder."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: is not a folder; choose another folder")
    if out.is_dir() and any(out.iterdir()):
        raise DatasetError(
            f"{out}: already exists and is not empty; choose another folder or delete it"
        )


def write_toy_dataset(
    out: Path,
    *,
    n_train: int,
    n_test: int,
    height: int,
    width: int,
    seed: int,
    progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Write scenes in the reference pix2pixHD layout plus a `toy.json` of the car styles.

    `{train,test}_label/` (8-bit), `{train,test}_inst/` (16-bit, Cityscapes ids) and
    `{train,test}_img/` (RGB), and `segmenter.pt2`: the toy's exact segmenter for `p2phd
    evaluate --segmenter` (see `toy_segmenter`). The folder is built under a temporary sibling
    name and renamed at the end, so an interrupted run never leaves a complete-looking `out`.
    """
    if n_train < 1 or n_test < 0:
        raise ToyOptionError(f"need at least 1 training and 0 test scenes, got {n_train}, {n_test}")
    check_range(n_train, "--train", 1, MAX_TOY_ITEMS)
    check_range(n_test, "--test", 0, MAX_TOY_ITEMS)
    if height < _MIN_SIDE or width < _MIN_SIDE:
        raise ToyOptionError(f"height and width must be >= {_MIN_SIDE}, got {height}x{width}")
    if height > _MAX_HEIGHT or width > _MAX_WIDTH:
        raise ToyOptionError(
            f"--height {height} --width {width}: toy scenes are at most "
            f"{_MAX_HEIGHT}x{_MAX_WIDTH} pixels (height x width)"
        )
    check_seed(seed)
    out = Path(out)
    check_new_folder(out)
    with atomic_dir(out) as tmp:
        scenes: dict[str, Any] = {}
        for split, stream, stem in _SPLITS:
            for i in range(n_train if split == "train" else n_test):
                name = f"{stem}_{i:05d}"
                scene = make_scene(_scene_seed(seed, stream, i), height, width)
                write_png(tmp / f"{split}_label" / f"{name}.png", id_map_array(scene.label))
                # always 16-bit, so every inst file reads the same way and 6001 survives
                write_png(tmp / f"{split}_inst" / f"{name}.png", scene.instance.astype(np.uint16))
                write_png(tmp / f"{split}_img" / f"{name}.png", scene.image)
                scenes[name] = {
                    "split": split,
                    "instances": {str(k): v for k, v in scene.styles.items()},
                }
                if progress is not None:
                    progress()
        meta = {
            "schema_version": 1,
            "classes": list(TOY_CLASSES),
            "label_nc": TOY_LABEL_NC,
            "thing_classes": list(THING_CLASSES),
            "car_class": CAR,
            "car_palette": [list(p) for p in CAR_PALETTE],
            "person_palette": [list(p) for p in PERSON_PALETTE],
            "height": height,
            "width": width,
            "seed": seed,
            "scenes": scenes,
        }
        write_text(tmp / "toy.json", json.dumps(meta, indent=1) + "\n")
        from p2phd.data.toy_segmenter import write_toy_segmenter  # imports torch: only here

        write_toy_segmenter(tmp / "segmenter.pt2")
    return {
        "out": str(out),
        "train": n_train,
        "test": n_test,
        "height": height,
        "width": width,
        "label_nc": TOY_LABEL_NC,
    }
