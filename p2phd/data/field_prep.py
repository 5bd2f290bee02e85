"""prep's half for measured fields (data/fields.py): each item's input and target read as
measured, checked (dtype, shape, NaN and inf, channels, sizes), resized in physical units,
normalised by its side's `FieldScale` and written as float32 `[C, H, W]` `.npy`.

Where a side has no declared range, a first pass over the files finds the data's own
minimum and maximum, one file at a time: nothing holds the whole dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from p2phd.config import FieldScale, FieldSpec, PrepConfig
from p2phd.data.augment import scaled_size
from p2phd.data.fields import check_finite, normalise, read_field, resize_field
from p2phd.data.pairing import Item
from p2phd.errors import ConfigError, DatasetError

SIDES = (("input", "input"), ("img", "output"))  # (role, side): the role's folder is its name
SAMPLE_PER_FILE = 1 << 16  # values per file and side that percentile limits are taken from,
SAMPLE_TOTAL = 1 << 24  # at most this many per side over the dataset (64 MiB of float32)


@dataclass(frozen=True)
class FieldJob:
    """One item for a worker (picklable)."""

    item: Item
    out: Path
    width: int | None
    multiple: int
    spec: FieldSpec | None  # None in the range pass
    fill: float | None
    channels: dict[str, int | None]  # side -> the channels declared (--input-nc ...)
    sample: int = 0  # the range pass: values per side kept for percentiles (0: none)


def read_sides(job: FieldJob) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Both sides of one item in physical units, checked: NaN/inf filled or refused, the
    declared channels, one size; and how many values --fill replaced per side."""
    values: dict[str, np.ndarray] = {}
    filled: dict[str, int] = {}
    for role, side in SIDES:
        path = job.item.files.get(role)
        if path is None:  # a test split without targets
            continue
        array, filled[side] = check_finite(path, read_field(path), job.fill)
        declared = job.channels.get(side)
        if declared is not None and len(array) != declared:
            option = "--input-nc" if side == "input" else "--output-nc"
            raise DatasetError(
                f"{path}: has {len(array)} channels, not the {declared} of {option}; "
                f"store {declared}-channel arrays or change {option}"
            )
        values[side] = array
    (_, hi, wi), (_, ho, wo) = values["input"].shape, values.get("output", values["input"]).shape
    if (hi, wi) != (ho, wo):
        raise DatasetError(
            f"{job.item.files['img']}: target is {wo}x{ho} but its input "
            f"{job.item.files['input']} is {wi}x{hi}; make them the same size or remove the pair"
        )
    return values, filled


def sample_size(items: int) -> int:
    """Values per file and side the range pass keeps for percentile limits."""
    return max(256, min(SAMPLE_PER_FILE, SAMPLE_TOTAL // max(items, 1)))


def first_channels(jobs: list[FieldJob]) -> dict[str, int]:
    """Each side's channel count, from the first item that reads (the others must match)."""
    for job in jobs:
        try:
            values, _ = read_sides(job)
        except DatasetError:
            continue
        return {side: len(v) for side, v in values.items()}
    return {}


def field_range(job: FieldJob) -> dict[str, Any]:
    """The range pass: each side's minimum, maximum and smallest positive value (after
    --fill), and an evenly spaced sample of `job.sample` values for percentile limits."""
    try:
        values, _ = read_sides(job)
    except DatasetError as exc:
        return {"error": str(exc)}
    found: dict[str, Any] = {}
    for side, v in values.items():
        flat = v.reshape(-1)
        positive = flat[flat > 0]
        sample = flat[:: max(1, flat.size // job.sample)] if job.sample else flat[:0]
        found[side] = (
            float(flat.min()),
            float(flat.max()),
            float(positive.min()) if positive.size else None,
            sample.astype(np.float32),
        )
    return found


def field_spec(
    cfg: PrepConfig, ranges: list[dict[str, Any]], channels: dict[str, int]
) -> FieldSpec:
    """The two sides' scales: the declared limits, else the range pass's (`ranges`): the
    data's minimum and maximum, or the percentiles `cfg` asks for."""
    scales = {}
    for side, given, kind, prefix, units in (
        ("input", cfg.in_range, cfg.in_scale, "--in", cfg.in_units),
        ("output", cfg.out_range, cfg.out_scale, "--out", cfg.out_units),
    ):
        found = [r[side] for r in ranges if side in r]
        if not found and (given is None or given.percent):
            raise DatasetError(
                f"{prefix}-range: no {side} file could be read to measure it; fix the files "
                f"or give {prefix}-range MIN,MAX"
            )
        if given is not None and given.percent:
            sample = np.concatenate([f[3] for f in found]).astype(np.float64)
            low, high = (float(np.percentile(sample, p)) for p in (given.low, given.high))
        elif given is not None:
            low, high = given.low, given.high
        else:
            low, high = min(f[0] for f in found), max(f[1] for f in found)
        if kind == "log" and (given is None or given.percent):  # log10 of what is above 0
            positive = [f[2] for f in found if f[2] is not None]
            low = max(low, min(positive, default=1.0))
        if (given is None or given.percent) and low >= high:
            high = low + 1  # a constant field: any range holds it
        if kind == "log" and low <= 0:
            raise ConfigError(
                f"{prefix}-scale log: the limits {low:g},{high:g} reach 0 or below; give "
                f"{prefix}-range above 0 or use {prefix}-scale asinh for signed fields"
            )
        declared = cfg.input_nc if side == "input" else cfg.output_nc
        count = channels.get(side, declared or 1)
        scales[side] = FieldScale(channels=count, low=low, high=high, scale=kind, units=units)
    return FieldSpec(input=scales["input"], output=scales["output"], fill=cfg.fill)


def process_field(job: FieldJob) -> dict[str, Any]:
    """Read, check, resize, normalise and write one item (runs in a worker)."""
    assert job.spec is not None
    try:
        values, filled = read_sides(job)
    except DatasetError as exc:
        return {"error": str(exc)}
    c, h, w = values["input"].shape
    width, height = scaled_size(w, h, job.width, job.multiple)
    result: dict[str, Any] = {
        "key": job.item.name,
        "width": width,
        "height": height,
        "max_label": None,
    }
    for role, side in SIDES:
        if side not in values:
            continue
        scale = job.spec.input if side == "input" else job.spec.output
        if len(values[side]) != scale.channels:
            path = job.item.files[role]
            return {
                "error": f"{path}: has {len(values[side])} channels, but the other {side} "
                f"files have {scale.channels}; give every {side} file the same channels"
            }
        resized = resize_field(values[side], width, height)
        normalised, clipped = normalise(scale, resized)
        target = job.out / job.item.split / role / f"{job.item.name}.npy"
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            np.save(f, normalised)
        result[f"clipped_{side}"] = clipped
        result[f"values_{side}"] = int(normalised.size)
        result[f"filled_{side}"] = filled[side]
        result[f"range_{side}"] = (float(values[side].min()), float(values[side].max()))
    return result
