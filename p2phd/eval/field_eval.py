"""`p2phd evaluate` of a run on measured fields: render a prepped split's inputs, map the
outputs and the targets back to physical units by the run's output scale, and score them
(eval/field_metrics.py) per image, pooled over the split, and on an `--bin N` grid. Writes
the outputs (`fields/KEY.npy`, physical units), previews of input | synthesized | target,
eval.json and an index.html."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import p2phd
from p2phd.atomic import check_apart, make_dirs, write_text
from p2phd.config import FieldSpec
from p2phd.data.fields import normalise, physical, read_npy, resize_field, write_field
from p2phd.data.io import write_png
from p2phd.data.manifest import read_manifest
from p2phd.errors import ConfigError, DatasetError
from p2phd.eval.evaluate import EvalOptions
from p2phd.eval.field_metrics import Sums, bin_mean, pearson, psnr, ssim
from p2phd.field_view import field_preview
from p2phd.runtime import DeviceOptions
from p2phd.synth.inputs import fit_size
from p2phd.synth.run import Run
from p2phd.synth.synthesizer import Synthesizer
from p2phd.visual import write_index

Progress = Callable[[int, int], None]
SCORES = ("mae", "rmse", "cc", "psnr", "ssim")


@dataclass
class FieldScores:
    """What `evaluate` measured on fields, in the output's physical units."""

    count: int
    units: str
    data_range: float  # the output's declared limits' span: PSNR's and SSIM's range
    pooled: dict[str, float | None]  # over every pixel of the split: mae, rmse, cc
    mean: dict[str, float | None]  # the mean of the per-image scores
    binned: dict[str, float | None] | None  # pooled over the --bin N grid
    bin: int | None
    per_image: list[dict[str, Any]]  # {"key", mae, rmse, cc, psnr, ssim}, worst CC first
    context: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "field",
            "version": p2phd.__version__,
            "count": self.count,
            "units": self.units,
            "data_range": self.data_range,
            "pooled": self.pooled,
            "mean": self.mean,
            "bin": self.bin,
            "binned": self.binned,
            "per_image": self.per_image,
            "context": self.context,
            "notes": self.notes,
        }

    def rows(self) -> list[tuple[str, str]]:
        """(score, value) lines for a table: the pooled, mean and binned scores."""
        unit = f" ({self.units})" if self.units else ""
        out = [
            (f"MAE{unit}", _fmt(self.pooled["mae"])),
            (f"RMSE{unit}", _fmt(self.pooled["rmse"])),
            ("CC (pooled)", _fmt(self.pooled["cc"])),
            ("CC (mean of images)", _fmt(self.mean["cc"])),
            ("PSNR (dB, mean)", _fmt(self.mean["psnr"])),
            ("SSIM (mean)", _fmt(self.mean["ssim"])),
        ]
        if self.binned is not None:
            out += [
                (f"CC ({self.bin}x{self.bin} bins)", _fmt(self.binned["cc"])),
                (f"RMSE ({self.bin}x{self.bin} bins){unit}", _fmt(self.binned["rmse"])),
            ]
        return out


@dataclass(frozen=True)
class FieldEvalReport:
    out: Path
    scores: FieldScores
    index: Path

    def to_dict(self) -> dict[str, Any]:
        return {**self.scores.to_dict(), "out": str(self.out), "index": str(self.index)}


def evaluate_field_run(
    run: Run,
    data: Path,
    out: Path,
    *,
    split: str = "test",
    width: int | None = None,
    bin_size: int | None = None,
    image_scorers: EvalOptions | None = None,
    device: DeviceOptions | None = None,
    progress: Progress | None = None,
) -> FieldEvalReport:
    """Render `data`'s split with the run and score it against the split's targets.
    `image_scorers`, the options of image scoring, are refused if they name a scorer: a
    field has no classes to segment and no photo for Inception."""
    spec = run.net.fields
    assert spec is not None, "a measured-field run"
    given = image_scorers
    named = (("--segmenter", given.segmenter), ("--inception", given.inception)) if given else ()
    for option, path in named:
        if path is not None:
            raise ConfigError(
                f"{option} {path}: scores images; this run renders measured fields, scored by "
                "MAE, RMSE, CC, PSNR and SSIM"
            )
    if bin_size is not None and bin_size < 1:
        raise ConfigError(f"--bin {bin_size}: give a block size of 1 or more pixels")
    manifest = read_manifest(Path(data))
    if manifest.fields != spec:
        raise DatasetError(
            f"{data}: holds other data than the run's (its fields map as {manifest.fields}, "
            f"the run's as {spec}); pass data prepped like the run's"
        )
    entry = manifest.splits.get(split)
    if entry is None or not entry.items:
        raise DatasetError(f"{data}: has no {split!r} items; pass a split it has (--split)")
    if not entry.has_images:
        raise DatasetError(f"{data}/{split}: has no targets to score against; pass --split")
    synth = Synthesizer(run, device or DeviceOptions())
    trained = run.train_size
    width = width if width is not None else (trained[0] if trained else None)
    root = Path(data) / split
    check_apart(out, [(f"the {split} split", root)], "--out")  # the targets it scores
    run.check_output(out, "--out")
    if bin_size:  # a block past the image holds no pixel, and 0 pixels score 0 error
        sizes = [fit_size(i.width, i.height, run.net, width, root / i.key) for i in entry.items]
        small = min(sizes, key=min)
        if bin_size > min(small):
            raise ConfigError(
                f"--bin {bin_size}: larger than the {small[0]}x{small[1]} images scored; give "
                f"--bin {min(small)} or less"
            )
    make_dirs(Path(out) / "fields")
    make_dirs(Path(out) / "previews")
    pooled, binned = Sums(), Sums()
    per_image: list[dict[str, Any]] = []
    data_range = spec.output.high - spec.output.low
    items = entry.items
    for done, item in enumerate(items, 1):
        x = _read(root / "input" / f"{item.key}.npy")
        real = physical(spec.output, _read(root / "img" / f"{item.key}.npy"))
        fake = _render(synth, spec, x, fit_size(x.shape[2], x.shape[1], run.net, width, root))
        pooled.add(fake, real)
        if bin_size:
            binned.add(bin_mean(fake, bin_size), bin_mean(real, bin_size))
        per_image.append(_image_scores(item.key, fake, real, data_range))
        write_field(Path(out) / "fields" / f"{item.key}.npy", fake)
        preview = field_preview(spec, x, _unit(spec, fake), _unit(spec, real))
        write_png(Path(out) / "previews" / f"{item.key}.png", preview)
        if progress:
            progress(done, len(items))
    scores = FieldScores(
        count=len(per_image),
        units=spec.output.units,
        data_range=data_range,
        pooled=pooled.scores(),
        mean={k: _mean([p[k] for p in per_image]) for k in SCORES},
        binned=binned.scores() if bin_size else None,
        bin=bin_size,
        per_image=sorted(per_image, key=lambda p: p["cc"] if p["cc"] is not None else -2),
        context={"run": str(run.root), "data": str(data), "split": split, "width": width},
    )
    return _write(Path(out), scores)


def _render(
    synth: Synthesizer, spec: FieldSpec, unit: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """G's output for one prepped input (`[C, H, W]` in [-1, 1]) rendered at `size`, in
    physical units at the input's own size."""
    h, w = unit.shape[1:]
    sized = resize_field(unit.astype(np.float64), *size).astype(np.float32)
    return resize_field(physical(spec.output, synth.render_unit([sized])[0]), w, h)


def _image_scores(
    key: str, fake: np.ndarray, real: np.ndarray, data_range: float
) -> dict[str, Any]:
    one = Sums().add(fake, real).scores()
    small = min(fake.shape[1:]) < 11
    return {
        "key": key,
        "mae": one["mae"],
        "rmse": one["rmse"],
        "cc": pearson(fake, real),
        "psnr": psnr(fake, real, data_range),
        "ssim": None if small else ssim(fake, real, data_range),
    }


def _unit(spec: FieldSpec, values: np.ndarray) -> np.ndarray:
    return normalise(spec.output, values)[0]


def _read(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: missing; prep the dataset again")
    return read_npy(path)


def _mean(values: list[Any]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _write(out: Path, scores: FieldScores) -> FieldEvalReport:
    write_text(out / "eval.json", json.dumps(scores.to_dict(), indent=2, sort_keys=True) + "\n")
    table = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{value}</td></tr>" for name, value in scores.rows()
    )
    extra = f"<h2>scores ({scores.count} fields)</h2><table>{table}</table>"
    rows = [
        (
            f"{p['key']}: CC {_fmt(p['cc'])}, RMSE {_fmt(p['rmse'])}",
            [(f"previews/{p['key']}.png", "input | synthesized | target")],
        )
        for p in scores.per_image
    ]
    index = write_index(
        out, f"p2phd evaluate: {scores.context.get('run', '')}", rows, extra_html=extra
    )
    return FieldEvalReport(out, scores, index)
