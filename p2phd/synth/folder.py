"""`p2phd synthesize`: a folder of label maps (+ instance maps) to a folder of images and an
index.html, in three steps: `plan` (pair the inputs, size them, check the options against
the run, say what a user would not guess), `render_all` (the pipeline around the device) and
`write_page`.

With a run trained with instance features, every region also gets a style (see
`synth.styles`): sampled from the clusters, chosen, mapped, or encoded from a real photo;
`variations` renders several styles of one label map. Class edits (`synth.edits`) change
the maps before anything else, so boundaries and styles follow them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from p2phd.atomic import check_apart, make_dirs, sync_folder
from p2phd.config import NetConfig
from p2phd.data.dataset import size_batches
from p2phd.data.io import write_image
from p2phd.errors import ConfigError
from p2phd.limits import (
    MAX_VARIATIONS,
    MAX_WORKERS,
    check_memory,
    check_range,
    memory_fix,
    synthesis_bytes,
)
from p2phd.synth.edits import parse_relabel, parse_relabel_instance
from p2phd.synth.field_synth import render_fields
from p2phd.synth.inputs import Input, SynthItem, collect_items, read_input, size_notes, target_size
from p2phd.synth.pipeline import Writers, ordered_map
from p2phd.synth.run import Run
from p2phd.synth.styles import (
    StyleMap,
    StyleSpec,
    parse_style,
    parse_vary,
    read_style_map,
    style_caption,
    style_notes,
)
from p2phd.synth.synthesizer import Synthesizer
from p2phd.visual import as_rgb, colorize, grid, legend_entries, write_index

IMAGE_FORMATS = ("png", "jpg", "webp")


@dataclass(frozen=True, slots=True)
class SynthOptions:
    """Everything `synthesize` can be asked, besides the run, the device, the inputs and the
    output folder. Checks that need no run are made here, the rest in `plan`."""

    batch_size: int = 4
    width: int | None = None
    style: StyleSpec = field(default_factory=StyleSpec)
    styled: bool = False  # a style option was given (an error for runs without features)
    style_from: tuple[Path, ...] = ()  # photos whose encoded features give the styles
    variations: int = 1
    relabel: tuple[tuple[int, int], ...] = ()
    relabel_instance: tuple[tuple[int, int], ...] = ()
    image_format: str = "png"  # png (lossless) | jpg | webp
    quality: int = 95  # jpg and webp
    save_labels: bool = True  # write the coloured label maps (labels/) the page shows
    workers: int = -1  # reader and writer threads each; -1: one per core; 0: all in one thread

    def __post_init__(self) -> None:
        if self.variations < 1 or self.batch_size < 1:
            raise ConfigError("--variations and --batch-size must be >= 1")
        check_range(self.variations, "--variations", 1, MAX_VARIATIONS)
        check_range(self.workers, "--workers", -1, MAX_WORKERS)
        if self.image_format not in IMAGE_FORMATS or not 1 <= self.quality <= 100:
            raise ConfigError(
                f"--format {self.image_format} --quality {self.quality}: use png, jpg "
                "or webp, and a quality from 1 to 100"
            )
        if self.style_from and (self.variations > 1 or self.styled):
            raise ConfigError(
                "--style-from takes every style from the photos; it does not combine "
                "with --style, --style-map, --vary or --variations"
            )

    def image_name(self, key: str, variation: int) -> str:
        suffix = f"_v{variation}" if self.variations > 1 else ""
        return f"{key}{suffix}.{self.image_format}"


def make_options(
    run: Run,
    *,
    style: str | None = None,
    style_map: Path | None = None,
    vary: str | None = None,
    seed: int = 0,
    relabels: Sequence[str] = (),
    relabel_instances: Sequence[str] = (),
    **plain: Any,
) -> SynthOptions:
    """SynthOptions from the command line's strings (`cluster=2`, `class:car`, `21:11`,
    `vegetation:building` ...); classes by number or by the run's class names."""
    net = run.net
    names, label_nc = net.class_names, net.label_nc
    if vary is not None and plain.get("variations", 1) == 1:
        raise ConfigError(f"--vary {vary}: says what changes across --variations N; give N")
    styled = any(v is not None for v in (style, style_map, vary))
    mode, cluster = parse_style(style or "random")
    mapped = StyleMap()
    if style_map is not None:
        mapped = read_style_map(style_map, net.feat_num, label_nc, names)
    varied = parse_vary(vary, names, label_nc) if vary else None
    return SynthOptions(
        style=StyleSpec(mode, cluster, mapped, varied, seed),
        styled=styled,
        relabel=tuple(parse_relabel(t, names, label_nc) for t in relabels),
        relabel_instance=tuple(
            parse_relabel_instance(t, names, label_nc) for t in relabel_instances
        ),
        **plain,
    )


@dataclass(frozen=True, slots=True)
class SynthReport:
    out: Path
    index: Path
    images: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the user should know, said once
    unedited: list[str] = field(default_factory=list)  # keys lacking a --relabel-instance id
    stale: list[str] = field(default_factory=list)  # images in `out` from an earlier run
    noun: str = "images"  # what was written: images, or measured fields

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "index": str(self.index),
            "count": len(self.images),
            "images": self.images,
            "notes": self.notes,
            "unedited": self.unedited,
            "stale": self.stale,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """What `synthesize` will do: the inputs, each one's size, their batches and the notes."""

    items: list[SynthItem]
    sizes: dict[str, tuple[int, int]]
    batches: list[list[SynthItem]]
    notes: list[str]


def check_options(net: NetConfig, opts: SynthOptions) -> None:
    """Options that cannot work with this run are refused before any work."""
    if not net.use_features and (opts.styled or opts.style_from or opts.variations > 1):
        raise ConfigError(
            "--style, --style-map, --style-from, --vary and --variations pick "
            "instance styles; this run was trained without features "
            "(--instance-feat / --label-feat)"
        )
    edited = [c for pair in opts.relabel for c in pair] + [d for _, d in opts.relabel_instance]
    if edited and net.label_nc == 0:
        raise ConfigError("--relabel needs label maps; this run takes RGB input images")
    if any(c >= net.label_nc for c in edited):
        raise ConfigError(
            f"--relabel: class {max(edited)} is unknown: this run has {net.label_nc} classes"
        )
    if opts.width is not None and opts.width < net.size_multiple:
        raise ConfigError(
            f"--width {opts.width}: must be at least {net.size_multiple} (this "
            f"run's sizes are multiples of {net.size_multiple})"
        )


def plan(
    synth: Synthesizer, inputs: Sequence[Path], inst: Sequence[Path], opts: SynthOptions
) -> Plan:
    """Check the options against the run, pair the inputs by key and size them (the run's
    training width unless `opts.width`), batch them by size; the notes say what a user would
    not guess (maps of another aspect ratio, variations that repeat a class's clusters)."""
    net, run = synth.net, synth.run
    check_options(net, opts)
    items = collect_items(inputs, inst, net.instance, opts.style_from)
    trained = run.train_size
    width = opts.width if opts.width is not None else (trained[0] if trained else None)
    sizes = {item.key: target_size(item, net, width) for item in items}
    notes = size_notes(items, sizes, trained)
    if net.use_features and not opts.style_from:
        notes += style_notes(opts.style, opts.variations, synth.bank, net.class_names)
    batches = size_batches(items, lambda item: sizes[item.key], opts.batch_size)
    if batches:
        w, h, n = max(
            ((*sizes[b[0].key], len(b)) for b in batches), key=lambda s: s[0] * s[1] * s[2]
        )
        needed = synthesis_bytes(net, w, h, n)
        note = check_memory(
            needed,
            str(synth.device),
            f"synthesizing {n} map{'s' if n > 1 else ''} of {w}x{h} at once",
            memory_fix(net, needed, False, "pass a smaller --width or --batch-size"),
        )
        notes += [note] if note else []
    return Plan(items, sizes, batches, notes)


def synthesize(
    synth: Synthesizer,
    inputs: Sequence[Path],
    out: Path,
    *,
    inst: Sequence[Path] = (),
    options: SynthOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SynthReport:
    """Synthesize images for the label maps into `out`, with an index.html beside them."""
    opts = options or SynthOptions()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; pass a folder for the images")
    synth.run.check_output(out, "--out")
    check_apart(
        out,
        [
            *(("the input", p) for p in inputs),
            *(("the instance maps", p) for p in inst),
            *(("the photos of --style-from", p) for p in opts.style_from),
        ],
        "--out",
    )
    if synth.net.fields is not None:
        return _fields(synth, inputs, out, inst, opts, progress)
    steps = plan(synth, inputs, inst, opts)
    synth.run.generator(synth.device)  # damaged weights are refused before anything is written
    earlier = image_files(out)
    make_dirs(out)
    rows, tally = render_all(synth, steps, out, opts, progress)
    notes = [*steps.notes, *tally.notes(opts, len(steps.items))]
    written = {name for key in rows for name, _ in rows[key]}
    if opts.save_labels:
        written |= {f"labels/{key}.png" for key in rows}
    stale = sorted(earlier - written)
    if stale:
        notes.append(
            f"{len(stale)} images in {out} are from an earlier run and not on the page "
            f"(first: {stale[0]}); delete them, or give a fresh --out"
        )
    index = write_page(out, f"p2phd synthesize: {synth.run.root}", rows, synth.net, opts)
    images = [str(out / name) for key in sorted(rows) for name, _ in rows[key]]
    return SynthReport(out, index, images, notes, tally.unedited, stale)


def _fields(
    synth: Synthesizer,
    inputs: Sequence[Path],
    out: Path,
    inst: Sequence[Path],
    opts: SynthOptions,
    progress: Callable[[int, int], None] | None,
) -> SynthReport:
    """A run on measured fields: physical units in and out (synth/field_synth.py)."""
    check_options(synth.net, opts)
    if inst:
        raise ConfigError("--inst: this run takes measured fields, not label and instance maps")
    images, index = render_fields(synth, inputs, out, opts.width, opts.batch_size, progress)
    return SynthReport(out, index, images, noun="fields")


def image_files(out: Path) -> set[str]:
    """The images synthesize could have written into `out` (and its labels/) before, as
    names relative to it: what this run does not rewrite is stale."""
    suffixes = {f".{f}" for f in IMAGE_FORMATS}
    names = set()
    for folder, prefix in ((out, ""), (out / "labels", "labels/")):
        if folder.is_dir():
            names |= {
                prefix + p.name for p in folder.iterdir() if p.suffix in suffixes and p.is_file()
            }
    return names


Rows = dict[str, list[tuple[str, str]]]  # key -> (file name, caption) of its images


@dataclass
class Tally:
    """What the edits met, for the notes: the keys a --relabel-instance id was missing from,
    those the --vary instance was missing from, and the style map's ids found in any map."""

    unedited: list[str] = field(default_factory=list)
    unvaried: list[str] = field(default_factory=list)
    mapped_instances: set[int] = field(default_factory=set)
    mapped_classes: set[int] = field(default_factory=set)

    def count(self, r: Input, opts: SynthOptions) -> None:
        style = opts.style
        self.unedited += [r.item.key] if r.missing else []
        vary = style.vary if opts.variations > 1 else None
        if vary is not None and vary[0] == "instance":
            if r.inst is None or not bool((r.inst == vary[1]).any()):
                self.unvaried.append(r.item.key)
        for wanted, found, where in (
            (style.style_map.instances, self.mapped_instances, r.inst),
            (style.style_map.classes, self.mapped_classes, r.label),
        ):
            if where is not None:  # each id looked for until one map holds it
                found |= {i for i in wanted if i not in found and bool((where == i).any())}

    def notes(self, opts: SynthOptions, total: int) -> list[str]:
        notes = []
        if self.unvaried:
            assert opts.style.vary is not None
            notes.append(
                f"--vary instance:{opts.style.vary[1]}: {len(self.unvaried)} of {total} "
                f"label maps have no such instance, so their variations are alike (first: "
                f"{self.unvaried[0]})"
            )
        if self.unedited:
            notes.append(
                f"{len(self.unedited)} of {total} label maps lack an instance of "
                f"--relabel-instance and are rendered unedited (first: {self.unedited[0]})"
            )
        mapped = opts.style.style_map
        for what, wanted, found in (
            ("instances", mapped.instances, self.mapped_instances),
            ("classes", mapped.classes, self.mapped_classes),
        ):
            absent = sorted(set(wanted) - found)
            if absent:
                listed = ", ".join(map(str, absent[:3])) + (" ..." if len(absent) > 3 else "")
                notes.append(
                    f"--style-map: {len(absent)} of its {what} ({listed}) are in none of the "
                    "maps, so their styles are unused; see p2phd inspect for the ids"
                )
        return notes


def render_all(
    synth: Synthesizer,
    steps: Plan,
    out: Path,
    opts: SynthOptions,
    progress: Callable[[int, int], None] | None,
) -> tuple[Rows, Tally]:
    """The pipeline: reader threads decode, check, resize and edit the inputs ahead of the
    batched forward pass on the device, writer threads encode and write behind it, and the
    folder is flushed to disk once at the end rather than file by file. Returns each key's
    images with their captions, and what the edits met."""
    net = synth.net
    rows: Rows = {}
    tally = Tally()
    workers = opts.workers if opts.workers >= 0 else max(1, os.cpu_count() or 1)
    edits = (opts.relabel, opts.relabel_instance)
    read = functools.partial(_read_batch, net=net, sizes=steps.sizes, edits=edits)

    def write(path: Path, image: np.ndarray) -> None:
        write_image(path, image, quality=opts.quality, durable=False)

    with Writers(workers, behind=4 * opts.batch_size * opts.variations) as writers:
        for batch in ordered_map(read, steps.batches, workers=workers, ahead=2):
            for r in batch:
                tally.count(r, opts)
                if opts.save_labels:
                    shown = (
                        as_rgb(r.label) if net.label_nc == 0 else colorize(r.label, net.label_nc)
                    )
                    writers.submit(write, out / "labels" / f"{r.item.key}.png", shown)
            jobs = [(r, v) for r in batch for v in range(opts.variations)]
            images: dict[tuple[str, int], np.ndarray] = {}
            for i in range(0, len(jobs), opts.batch_size):
                chunk = jobs[i : i + opts.batch_size]
                features = [f for r, v in chunk for f in _features(synth, opts, r, v)]
                rendered = synth.render([r for r, _ in chunk], features or None)
                for (r, v), image in zip(chunk, rendered, strict=True):
                    images[r.item.key, v] = image
                    writers.submit(write, out / opts.image_name(r.item.key, v), image)
            for r in batch:
                key = r.item.key
                rows[key] = _captions(synth, opts, key)
                if opts.variations > 1:
                    sheet = grid([as_rgb(images[key, v]) for v in range(opts.variations)])
                    writers.submit(write, out / rows[key][-1][0], sheet)
            if progress:
                progress(len(rows), len(steps.items))
    sync_folder(out)  # one flush for every image written
    return rows, tally


def write_page(out: Path, title: str, rows: Rows, net: NetConfig, opts: SynthOptions) -> Path:
    """index.html: each input's coloured label map (what it was rendered from; unless
    --no-save-labels) and its images."""
    labels = [("labels/{}.png", "label map")] if opts.save_labels else []
    table = [(key, [*((n.format(key), c) for n, c in labels), *rows[key]]) for key in sorted(rows)]
    legend = None if net.label_nc == 0 else legend_entries(net.label_nc, net.class_names)
    return write_index(out, title, table, legend=legend)


def _read_batch(
    group: list[SynthItem],
    *,
    net: NetConfig,
    sizes: dict[str, tuple[int, int]],
    edits: tuple[Sequence[tuple[int, int]], Sequence[tuple[int, int]]],
) -> list[Input]:
    return [read_input(item, net, sizes[item.key], *edits) for item in group]


def _features(synth: Synthesizer, opts: SynthOptions, r: Input, variation: int) -> list[Tensor]:
    """One job's `[F, H, W]` feature maps (none for runs without features): encoded from
    its photo, or its styles."""
    if not synth.net.use_features:
        return []
    if opts.style_from:
        return [synth.encoded(r)]
    return [synth.styles(r, opts.style, variation)]


def _captions(synth: Synthesizer, opts: SynthOptions, key: str) -> list[tuple[str, str]]:
    """The images of one input with their captions; with variations, also their grid."""
    net, spec = synth.net, opts.style
    names = [opts.image_name(key, v) for v in range(opts.variations)]
    if not net.use_features:
        captions = ["synthesized"] * opts.variations
    elif opts.style_from:
        captions = ["styles encoded from the photo"]
    else:
        target = spec.vary[1] if spec.vary is not None and spec.vary[0] == "class" else None
        clusters = synth.clusters(target) if target is not None else 0
        captions = [
            style_caption(spec, v, opts.variations, clusters, net.class_names)
            for v in range(opts.variations)
        ]
    if opts.variations > 1:
        names.append(f"{key}_variations.{opts.image_format}")
        captions.append(f"all {opts.variations} variations")
    return list(zip(names, captions, strict=True))
