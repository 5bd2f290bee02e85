"""`p2phd prep`: pair, check, resize and convert a source dataset into a prepped folder.

Every problem the reference only meets deep inside training (a CUDA device-side assert for a
label >= label_nc, a shifted pairing, an int16-wrapped instance id, a size the generator
cannot take) is found here, on the CPU, and reported as one line naming the file and the
fix. The output is written into a
temporary sibling folder and renamed into place only when complete, so a folder that has a
`dataset.json` is a whole dataset.

Output layout (`out/`): `dataset.json`, then per split `label/` (8-bit when label_nc <= 256,
else 16-bit), `inst/` (16-bit ids, `class * class_divisor + k` for objects: 1000, or 256 for
COCO-Stuff), `boundary/` (0/255, for inspection), `input/` (RGB inputs of `--label-nc 0`
datasets) and `img/` (photos), one `<key>.png` each.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from p2phd import datasets
from p2phd.atomic import atomic_dir, check_apart, write_text
from p2phd.config import FieldScale, FieldSpec, PrepConfig
from p2phd.data import io
from p2phd.data.augment import scaled_size
from p2phd.data.field_prep import (
    FieldJob,
    field_range,
    field_spec,
    first_channels,
    process_field,
    sample_size,
)
from p2phd.data.fields import describe_scale
from p2phd.data.manifest import (
    MANIFEST,
    FieldStats,
    Manifest,
    ManifestItem,
    ManifestSplit,
    Skipped,
)
from p2phd.data.pairing import SPLITS, Item, Source, SourceKind
from p2phd.data.palette import Palette
from p2phd.data.pool import outcomes
from p2phd.data.sources import discover, read_item
from p2phd.errors import DatasetError, LabelRangeError
from p2phd.ops import boundary_map

Progress = Callable[[int, int], None]
_HOW = {
    "inferred": "inferred from the data: ",
    "class names": "from --class-names, ",
    "palette": "from --palette, ",
}


@dataclass(frozen=True)
class PrepReport:
    """What `prepare_dataset` wrote and what it skipped."""

    out: Path
    source: Path
    source_layout: str  # "reference" or a known dataset's
    kind: SourceKind
    label_nc: int
    label_nc_inferred: bool
    label_nc_from: str  # "given" | "class names" | "cityscapes" | "toy" | "inferred" | "rgb"
    class_names: tuple[str, ...]  # () when unknown
    dataset: str  # a known dataset ("cityscapes", "ade20k", "toy", ...) or "" (sources.Source)
    unlabeled: int | None  # the dataset's unlabeled id (a class of its own), when it has one
    max_label: int | None  # None for RGB-input datasets
    instance: bool
    class_divisor: int  # instance ids of objects are class * this + k
    multiple: int
    counts: dict[str, int]  # items written per split
    skipped: list[dict[str, str]]  # {"split", "key", "reason"}
    sizes: dict[str, list[int]]  # split -> [width, height], for splits of one size only
    fields: FieldSpec | None = None  # measured fields: each side's scale
    field_stats: dict[str, FieldStats] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (the `--json` output)."""
        data = asdict(self)
        data["out"], data["source"] = str(self.out), str(self.source)
        return data

    def describe(self) -> str:
        """One human line, e.g. 'prepped 24 train + 4 test items (128x64) into data/; ...'."""
        counts = " + ".join(f"{n} {split}" for split, n in self.counts.items())
        distinct = {tuple(s) for s in self.sizes.values()}
        if len(distinct) == 1 and len(self.sizes) == sum(n > 0 for n in self.counts.values()):
            size = " ({}x{})".format(*distinct.pop())
        else:
            size = " (mixed sizes)"
        if self.kind == "rgb":
            classes = "RGB inputs (label_nc 0)"
        elif self.fields is not None:
            classes = "measured fields: " + ", ".join(
                self._describe_side(name, side, scale)
                for name, side, scale in (
                    ("input", "input", self.fields.input),
                    ("target", "output", self.fields.output),
                )
            )
        else:
            known = datasets.get(self.label_nc_from)
            how = f"{known.summary}, " if known else _HOW.get(self.label_nc_from, "")
            classes = f"label_nc {self.label_nc} ({how}max label {self.max_label})"
        inst = "with instance maps" if self.instance else "no instance maps"
        if self.fields is None:
            classes += f"; {inst}"
        return (
            f"prepped {counts} items{size} into {self.out}/ from the {self.source_layout} "
            f"layout; {classes}; {len(self.skipped)} skipped"
        )

    def _describe_side(self, name: str, side: str, scale: FieldScale) -> str:
        """'input 1 channel, linear in [-1000, 1000], 12 values clipped (0.40%)'."""
        text = f"{name} {describe_scale(scale)}"
        stats = self.field_stats.get(side)
        if stats is not None and stats.clipped:
            text += f", {stats.clipped} values clipped ({stats.clipped / stats.values:.2%})"
        if stats is not None and stats.filled:
            text += f", {stats.filled} NaN/inf filled"
        return text


@dataclass(frozen=True)
class _Job:
    """Everything a worker process needs for one item (picklable)."""

    item: Item
    out: Path  # the temporary output folder
    width: int | None
    multiple: int
    label_nc: int | None  # checked when given
    label_dtype: str | None  # "uint8"/"uint16"; None: per item, fixed up once label_nc is known
    palette: Palette | None  # colour-coded label maps


def prepare_dataset(
    src: Path, out: Path, cfg: PrepConfig, progress: Progress | None = None
) -> PrepReport:
    """Prep source folder `src` (reference layout or raw Cityscapes) into `out`.

    Bad items stop the run with their one-line error (pairing problems first, then items in
    split and key order), or with `cfg.skip_bad` are skipped and listed in the report.
    """
    src, out = Path(src), Path(out)
    _check_out(src, out, cfg.overwrite)
    source = discover(src, cfg)
    if cfg.val_fraction:
        source = hold_out(source, cfg.val_fraction)
    cfg, label_nc_from, class_names = _decide_classes(cfg, source)
    bad = [b for split in source.splits.values() for b in split.bad]
    if bad and not cfg.skip_bad:
        raise DatasetError(bad[0].reason)
    target = Path(os.path.abspath(out))  # "." and "data/.." have no usable name or sibling
    with atomic_dir(target) as tmp:
        skipped = [{"split": b.split, "key": b.key, "reason": b.reason} for b in bad]
        kept, fields = _convert(source, tmp, cfg, progress, skipped)
        report = _report(out, cfg, source, kept, skipped, label_nc_from, class_names)
        field_stats = _field_stats(kept) if fields else {}
        report = dataclasses.replace(report, fields=fields, field_stats=field_stats)
        if report.kind == "labels" and cfg.label_nc is None and report.label_nc > 256:
            _widen_labels(tmp, kept)
        manifest = Manifest(
            kind=report.kind,
            label_nc=report.label_nc,
            label_nc_inferred=report.label_nc_inferred,
            instance=report.instance,
            class_names=report.class_names,
            dataset=report.dataset,
            unlabeled=report.unlabeled,
            class_divisor=report.class_divisor,
            multiple=cfg.multiple,
            source=str(src.resolve()),
            source_layout=source.layout,
            splits={
                split: ManifestSplit(
                    has_images=source.splits[split].has_images,
                    items=tuple(
                        ManifestItem(r["key"], r["width"], r["height"])
                        for r in sorted(rs, key=lambda r: r["key"])
                    ),
                )
                for split, rs in kept.items()
            },
            skipped=tuple(Skipped(**s) for s in skipped),
            fields=fields,
            field_stats=field_stats,
        )
        write_text(tmp / MANIFEST, manifest.to_json())
    return report


VAL = "val"


def hold_out(source: Source, fraction: float) -> Source:
    """A `val` split of `fraction` of the training items (at least one), chosen by a fixed
    seed so that prep gives the same split every time; --eval-every scores it."""
    train = source.splits.get("train")
    if train is None or len(train.items) < 2:
        raise DatasetError(f"--val-fraction: {source.root} has too few training items to hold out")
    n = len(train.items)
    count = min(n - 1, max(1, round(fraction * n)))
    chosen = set(np.random.default_rng(0).permutation(n)[:count].tolist())
    val = [replace(item, split=VAL) for i, item in enumerate(train.items) if i in chosen]
    kept = [item for i, item in enumerate(train.items) if i not in chosen]
    splits = dict(source.splits)
    splits["train"] = replace(train, items=kept)
    splits[VAL] = replace(train, items=val, bad=[])
    ordered = {k: splits[k] for k in ("train", VAL, *splits) if k in splits}
    return replace(source, splits=ordered)


def _check_field_options(cfg: PrepConfig, source: Source) -> None:
    """The options of measured fields are refused for sources of label maps and photos."""
    if source.kind == "field":
        return
    given = [
        option
        for option, value in (
            ("--field", cfg.field),
            ("--in-range", cfg.in_range),
            ("--out-range", cfg.out_range),
            ("--in-scale", cfg.in_scale != "linear"),
            ("--out-scale", cfg.out_scale != "linear"),
            ("--fill", cfg.fill is not None),
            ("--in-units", cfg.in_units),
            ("--out-units", cfg.out_units),
            ("--input-nc", cfg.input_nc is not None),
            ("--output-nc", cfg.output_nc is not None),
        )
        if value
    ]
    if given:
        photos = source.kind == "rgb"
        hint = ", or pass --field to read its *_A/*_B files as fields" if photos else ""
        raise DatasetError(
            f"{given[0]}: {source.root} holds {'photos' if photos else 'label maps'}, no "
            f"measured fields (.npy, FITS, float or 16-bit TIFF and PNG); drop it{hint}"
        )


def _decide_classes(cfg: PrepConfig, source: Source) -> tuple[PrepConfig, str, tuple[str, ...]]:
    """label_nc and the class names: given (--palette, --class-names, --label-nc), those
    of a known dataset (Cityscapes: 35), or label_nc inferred from the data (then no names)."""
    _check_field_options(cfg, source)
    if source.kind != "labels":
        if cfg.palette is not None:
            raise DatasetError(f"--palette: {source.root} holds no label maps (*_A/ inputs)")
        return cfg, source.kind, ()
    if cfg.palette is not None:
        palette = cfg.palette
        if cfg.class_names:
            raise DatasetError("--palette names the classes; drop --class-names")
        if cfg.label_nc is not None and cfg.label_nc != palette.label_nc:
            raise DatasetError(
                f"--label-nc {cfg.label_nc}: the palette {palette.source} has ids up to "
                f"{palette.label_nc - 1}, so {palette.label_nc} classes; drop --label-nc"
            )
        return replace(cfg, label_nc=palette.label_nc), "palette", palette.names
    if cfg.class_names:
        if cfg.label_nc is not None and cfg.label_nc != len(cfg.class_names):
            raise DatasetError(
                f"--class-names: {len(cfg.class_names)} names, but --label-nc {cfg.label_nc}; "
                "give one name per class"
            )
        return replace(cfg, label_nc=len(cfg.class_names)), "class names", cfg.class_names
    if cfg.label_nc is not None:
        known = source.classes if len(source.classes) == cfg.label_nc else ()
        return cfg, "given", known
    if source.classes:
        return replace(cfg, label_nc=len(source.classes)), source.dataset, source.classes
    return cfg, "inferred", ()


def _check_out(src: Path, out: Path, overwrite: bool) -> None:
    """Refuse to clobber a non-empty folder (unless asked, and then only a prepped dataset)
    or the source itself."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a folder; choose another output folder")
    check_apart(out, [("the source", src)], "DATA")  # synthesize's rule for --out
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise DatasetError(
            f"{out}: exists and is not empty; pass --overwrite to replace it or choose "
            "another output folder"
        )
    if not (out / MANIFEST).is_file():  # --overwrite replaces a dataset, not someone's folder
        raise DatasetError(
            f"{out}: holds no {MANIFEST}, so it is not a prepped dataset and --overwrite will "
            "not replace it; choose another output folder or empty this one"
        )


def _convert(
    source: Source,
    tmp: Path,
    cfg: PrepConfig,
    progress: Progress | None,
    skipped: list[dict[str, str]],
) -> tuple[dict[str, list[dict[str, Any]]], FieldSpec | None]:
    """Convert every paired item into `tmp`; split -> results of the kept items (and, for
    measured fields, their scales).

    Bad items are appended to `skipped` (only reached with `cfg.skip_bad`).
    """
    if source.kind == "field":
        return _convert_fields(source, tmp, cfg, progress, skipped)
    label_dtype = None
    if cfg.label_nc is not None and source.kind == "labels":
        label_dtype = "uint8" if cfg.label_nc <= 256 else "uint16"
    jobs = [
        _Job(item, tmp, cfg.width, cfg.multiple, cfg.label_nc, label_dtype, cfg.palette)
        for split in source.splits.values()
        for item in split.items
    ]
    try:
        results = _run(jobs, cfg.workers, cfg.skip_bad, progress)
    except LabelRangeError as first:
        raise DatasetError(f"{first}, {_label_nc_advice(source, jobs, cfg.workers)}") from None
    return _keep(source, jobs, results, skipped), None


def _convert_fields(
    source: Source,
    tmp: Path,
    cfg: PrepConfig,
    progress: Progress | None,
    skipped: list[dict[str, str]],
) -> tuple[dict[str, list[dict[str, Any]]], FieldSpec]:
    """Measured fields (data/field_prep.py): a range pass where a side declares no range,
    then the conversion; returns the kept items and the two sides' scales."""
    channels = {"input": cfg.input_nc, "output": cfg.output_nc}
    jobs = [
        FieldJob(item, tmp, cfg.width, cfg.multiple, None, cfg.fill, channels)
        for split in source.splits.values()
        for item in split.items
    ]
    ranges: list[dict[str, Any]] = []
    declared = (cfg.in_range, cfg.out_range)
    if any(r is None or r.percent for r in declared):
        sample = sample_size(len(jobs)) if any(r and r.percent for r in declared) else 0
        passes = [dataclasses.replace(job, sample=sample) for job in jobs]
        bar = progress
        first = (lambda done, total: bar(done, 2 * total)) if bar else None
        ranges = _run(passes, cfg.workers, cfg.skip_bad, first, field_range)
        progress = (lambda done, total: bar(total + done, 2 * total)) if bar else None
    found = [r for r in ranges if "error" not in r]
    spec = field_spec(cfg, found, first_channels(jobs))
    jobs = [dataclasses.replace(job, spec=spec) for job in jobs]
    results = _run(jobs, cfg.workers, cfg.skip_bad, progress, process_field)
    return _keep(source, jobs, results, skipped), spec


def _keep(
    source: Source,
    jobs: list[Any],
    results: list[dict[str, Any]],
    skipped: list[dict[str, str]],
) -> dict[str, list[dict[str, Any]]]:
    """Split -> the results of the kept items; bad ones go to `skipped`."""
    kept: dict[str, list[dict[str, Any]]] = {split: [] for split in source.splits}
    for job, result in zip(jobs, results, strict=True):
        if "error" in result:
            skipped.append(
                {"split": job.item.split, "key": job.item.key, "reason": result["error"]}
            )
        else:
            kept[job.item.split].append(result)
    if not any(kept.values()):
        raise DatasetError(
            f"{source.root}: nothing left to prep, all {len(skipped)} items are bad "
            f"(first: {skipped[0]['reason']})"
        )
    order = (*SPLITS, VAL)
    skipped.sort(key=lambda s: (order.index(s["split"]) if s["split"] in order else 9, s["key"]))
    return kept


def _report(
    out: Path,
    cfg: PrepConfig,
    source: Source,
    kept: dict[str, list[dict[str, Any]]],
    skipped: list[dict[str, str]],
    label_nc_from: str,
    class_names: tuple[str, ...],
) -> PrepReport:
    """Summarise the kept items; label_nc is inferred here when nothing else decided it."""
    labels = [r["max_label"] for rs in kept.values() for r in rs if r["max_label"] is not None]
    max_label = max(labels, default=None)
    if source.kind != "labels":
        label_nc = 0
    else:
        label_nc = cfg.label_nc if cfg.label_nc is not None else int(max_label or 0) + 1
    sizes: dict[str, list[int]] = {}
    for split, rs in kept.items():
        distinct = {(r["width"], r["height"]) for r in rs}
        if len(distinct) == 1:
            sizes[split] = list(distinct.pop())
    return PrepReport(
        out=out,
        source=source.root,
        source_layout=source.layout,
        kind=source.kind,
        label_nc=label_nc,
        label_nc_inferred=label_nc_from == "inferred",
        label_nc_from=label_nc_from,
        class_names=class_names,
        dataset=source.dataset,
        unlabeled=_unlabeled(source) if class_names == source.classes else None,
        max_label=max_label,
        instance=source.instance,
        class_divisor=source.class_divisor,
        multiple=cfg.multiple,
        counts={split: len(rs) for split, rs in kept.items()},
        skipped=skipped,
        sizes=sizes,
    )


def _unlabeled(source: Source) -> int | None:
    """The known dataset's unlabeled id (a class of its own, not scored), if it has one."""
    known = datasets.get(source.dataset)
    return known.unlabeled if known else None


def _run(
    jobs: Sequence[Any],
    workers: int,
    skip_bad: bool,
    progress: Progress | None,
    work: Callable[[Any], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Process every job; without `skip_bad`, stop at the first bad item in job order."""
    total = len(jobs)
    if progress:
        progress(0, total)
    results: list[dict[str, Any] | None] = [None] * total
    first_bad, done = total, 0
    finished = outcomes(jobs, workers, work or _process)
    try:
        for index, result in finished:
            results[index] = result
            done += 1
            if progress:
                progress(done, total)
            if "error" in result and not skip_bad:
                first_bad = min(first_bad, index)
            # Workers finish out of order: report the earliest bad item, once all before it ran.
            if first_bad < total and all(r is not None for r in results[:first_bad]):
                bad: dict[str, Any] = results[first_bad]  # type: ignore[assignment]
                if "label_over" in bad:
                    raise LabelRangeError(bad["error"], bad["label_over"])
                raise DatasetError(bad["error"])
    finally:
        finished.close()
    return results  # type: ignore[return-value]


def _label_nc_advice(source: Source, jobs: list[_Job], workers: int) -> str:
    """The --label-nc that holds every label map of the source, not just the first one over:
    read on failure only, so that one rerun of prep is enough."""
    tops = dict(outcomes(jobs, workers, _largest_label))
    index = max(tops, key=lambda i: (tops[i], -i))
    where = jobs[index].item.files.get("label")
    top = tops[index]
    return (
        f"or pass --label-nc {top + 1}: the largest label value in {source.root} is {top} "
        f"({where}); without --label-nc prep infers it"
    )


def _largest_label(job: _Job) -> int:
    """The largest label value of one item (-1 where it cannot be read: reported elsewhere)."""
    try:
        return int(read_item(job.item, None, job.palette)["label"].max())
    except (DatasetError, KeyError, ValueError):
        return -1


def _process(job: _Job) -> dict[str, Any]:
    """Read, check, resize and write one item (runs in a worker).

    Returns {"key", "width", "height", "max_label"}, or {"error": line} for a bad item. A
    failed write raises: that is no bad item but a stop.
    """
    item = job.item
    try:
        maps = read_item(item, job.label_nc, job.palette)
    except LabelRangeError as exc:
        return {"error": str(exc), "label_over": exc.top}
    except DatasetError as exc:
        return {"error": str(exc)}
    first = next(iter(maps.values()))
    width, height = scaled_size(first.shape[1], first.shape[0], job.width, job.multiple)
    base = job.out / item.split
    max_label = None
    for role, array in maps.items():
        path = base / role / f"{item.name}.png"
        if role in ("input", "img"):
            written = io.resize_rgb(array, width, height)
        else:
            ids = io.resize_ids(array, width, height)
            if role == "label":
                max_label = int(array.max())
                dtype = job.label_dtype or ("uint8" if max_label < 256 else "uint16")
                written = ids.astype(dtype)
            else:
                written = ids.astype(np.uint16)
                edge = boundary_map(torch.from_numpy(ids)[None])[0, 0].numpy()
                io.write_png(base / "boundary" / f"{item.name}.png", edge.astype(np.uint8) * 255)
        io.write_png(path, written)
    return {"key": item.name, "width": width, "height": height, "max_label": max_label}


def _field_stats(kept: dict[str, list[dict[str, Any]]]) -> dict[str, FieldStats]:
    """Each side's measured range, clipped and filled counts over the kept items."""
    stats = {}
    for side in ("input", "output"):
        rows = [r for rs in kept.values() for r in rs if f"range_{side}" in r]
        if rows:
            stats[side] = FieldStats(
                low=min(r[f"range_{side}"][0] for r in rows),
                high=max(r[f"range_{side}"][1] for r in rows),
                clipped=sum(r[f"clipped_{side}"] for r in rows),
                values=sum(r[f"values_{side}"] for r in rows),
                filled=sum(r[f"filled_{side}"] for r in rows),
            )
    return stats


def _widen_labels(tmp: Path, kept: dict[str, list[dict[str, Any]]]) -> None:
    """Rewrite the 8-bit label maps as 16-bit once the inferred label_nc turns out > 256."""
    for split, results in kept.items():
        for result in results:
            if result["max_label"] < 256:
                path = tmp / split / "label" / f"{result['key']}.png"
                io.write_png(path, io.read_id_map(path).astype(np.uint16))
