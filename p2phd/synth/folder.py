"""Label maps (+ instance maps) -> images, through the same `encode_input` as training.

With a run trained with instance features, every region also gets a style (see
`p2phd.synth.styles`): sampled from the clusters, chosen, mapped, or encoded from a real photo;
`variations` renders several styles of one label map. Class edits (`relabel`) change the
maps before anything else, so boundaries and styles follow them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from p2phd.atomic import make_dirs, sync_folder
from p2phd.checkpoint import Checkpoint, load_net, require_checkpoint
from p2phd.config import NetConfig
from p2phd.data.dataset import size_batches
from p2phd.data.io import write_image
from p2phd.data.names import class_name
from p2phd.errors import ConfigError
from p2phd.ops import encode_input, unit_image
from p2phd.runtime import autocast, resolve_device, resolve_precision, use_fast_kernels
from p2phd.synth.features import FeatureBank
from p2phd.synth.inputs import (
    Input,
    SynthItem,
    collect_items,
    read_input,
    size_notes,
    target_size,
    training_size,
)
from p2phd.synth.pipeline import Writers, ordered_map
from p2phd.synth.styles import (
    StyleMap,
    StyleSpec,
    parse_relabel,
    parse_relabel_instance,
    parse_style,
    parse_vary,
    read_style_map,
    region_features,
    regions,
)
from p2phd.visual import as_rgb, colorize, grid, legend_entries, to_uint8, write_index


@dataclass(frozen=True, slots=True)
class SynthOptions:
    """Everything `synthesize` can be asked, besides the run, the inputs and the output."""

    batch_size: int = 4
    width: int | None = None
    device: str = "auto"
    precision: str = "auto"
    style: StyleSpec = field(default_factory=StyleSpec)
    styled: bool = False  # a style option was given (an error for runs without features)
    style_from: tuple[Path, ...] = ()  # photos whose encoded features give the styles
    variations: int = 1
    relabel: tuple[tuple[int, int], ...] = ()
    relabel_instance: tuple[tuple[int, int], ...] = ()
    image_format: str = "png"  # png (lossless) | jpg | webp
    quality: int = 95  # jpg and webp
    save_labels: bool = False  # also write the coloured label maps (labels/)
    workers: int = -1  # reader and writer threads each; -1: one per core; 0: all in one thread
    compile: bool = False  # torch.compile G (and E) as one graph


def make_options(
    run: Path,
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
    net = require_checkpoint(run).config.net
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "index": str(self.index),
            "count": len(self.images),
            "images": self.images,
            "notes": self.notes,
            "unedited": self.unedited,
        }


def load_generator(run: Path, device: torch.device) -> tuple[nn.Module, Checkpoint]:
    """The newest G of a run, and its checkpoint."""
    ckpt = require_checkpoint(run)
    return load_net(ckpt, "G", device), ckpt


class Styler:
    """Feature maps for runs with features: from the cluster bank, or from photos via E."""

    def __init__(
        self, run: Path, ckpt: Checkpoint, opts: SynthOptions, device: torch.device
    ) -> None:
        net = ckpt.config.net
        self.net, self.spec, self.device = net, opts.style, device
        self.encoder: nn.Module | None = None
        self.bank: FeatureBank | None = None
        if opts.style_from:
            self.encoder = load_net(ckpt, "E", device)
        else:
            self.bank = FeatureBank.load(run, net.label_nc, net.feat_num)

    def clusters(self, cls: int) -> int:
        """How many clusters class `cls` has in the bank (0 with styles from photos)."""
        if self.bank is None or cls >= len(self.bank.count):
            return 0
        return int(self.bank.count[cls])

    def notes(self, opts: SynthOptions) -> list[str]:
        """Variations of a class beyond its clusters repeat them: said, not silently."""
        vary = self.spec.vary
        if self.bank is None or vary is None or vary[0] != "class" or opts.variations <= 1:
            return []
        target, count = vary[1], self.clusters(vary[1])
        name = class_name(target, self.net.class_names)
        if count == 0:
            return [
                f"--vary class:{target}: {name} has no clusters; every variation gives it its "
                "mean feature"
            ]
        if opts.variations > count:
            return [
                f"--variations {opts.variations}: {name} has {count} clusters; variations "
                f"{count}..{opts.variations - 1} repeat them in turn"
            ]
        return []

    def __call__(self, r: Input, variation: int) -> Tensor:
        """`[F, H, W]` features for one input and variation number."""
        return self.features(r, variation, self.spec)

    def features(self, r: Input, variation: int, spec: StyleSpec) -> Tensor:
        """`[F, H, W]` features for one input and variation number under `spec`."""
        label = torch.from_numpy(r.label)
        pool = torch.from_numpy(style_pool(self.net, r.label, r.inst))
        if self.encoder is not None:
            assert r.photo is not None
            photo = torch.from_numpy(r.photo).permute(2, 0, 1)[None].to(self.device)
            with torch.inference_mode():
                return self.encoder(unit_image(photo), pool[None].to(self.device))[0]
        assert self.bank is not None
        ids, inverse, classes = regions(pool, label)
        vectors = region_features(
            ids.numpy(), classes.numpy(), self.bank, spec, r.item.key, variation
        )
        h, w = label.shape
        return vectors[inverse].reshape(h, w, -1).permute(2, 0, 1).to(self.device)


def style_pool(net: NetConfig, label: np.ndarray, inst: np.ndarray | None) -> np.ndarray:
    """The map whose regions carry styles: instances (--instance-feat) or classes."""
    return inst if net.instance_feat and inst is not None else label


def _check(net: NetConfig, opts: SynthOptions) -> None:
    """Options that cannot work with this run are refused before any work."""
    if not net.use_features and (opts.styled or opts.style_from or opts.variations > 1):
        raise ConfigError(
            "--style, --style-map, --style-from, --vary and --variations pick "
            "instance styles; this run was trained without features "
            "(--instance-feat / --label-feat)"
        )
    edited = [c for pair in opts.relabel for c in pair] + [d for _, d in opts.relabel_instance]
    if any(c >= max(net.label_nc, 1) for c in edited):
        raise ConfigError(
            f"--relabel: class {max(edited)} is unknown: this run has {net.label_nc} classes"
        )
    if (opts.relabel or opts.relabel_instance) and net.label_nc == 0:
        raise ConfigError("--relabel needs label maps; this run takes RGB input images")
    if opts.variations < 1 or opts.batch_size < 1:
        raise ConfigError("--variations and --batch-size must be >= 1")
    if opts.image_format not in ("png", "jpg", "webp") or not 1 <= opts.quality <= 100:
        raise ConfigError(
            f"--format {opts.image_format} --quality {opts.quality}: use png, jpg "
            "or webp, and a quality from 1 to 100"
        )
    if opts.width is not None and opts.width < net.size_multiple:
        raise ConfigError(
            f"--width {opts.width}: must be at least {net.size_multiple} (this "
            f"run's sizes are multiples of {net.size_multiple})"
        )
    if opts.style_from and (opts.variations > 1 or opts.styled):
        raise ConfigError(
            "--style-from takes every style from the photos; it does not combine "
            "with --style, --style-map, --vary or --variations"
        )


def synthesize(
    run: Path,
    inputs: Sequence[Path],
    out: Path,
    *,
    inst: Sequence[Path] = (),
    options: SynthOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SynthReport:
    """Synthesize images for the label maps into `out`, with an index.html beside them.

    A pipeline: reader threads decode, check, resize and edit the inputs ahead of the
    batched forward pass on the device, writer threads encode and write behind it, and the
    folder is flushed to disk once at the end rather than file by file. Label maps are
    resized to the width the run was trained at (or `options.width`) by the one size rule;
    maps of another aspect ratio than the training images are said once."""
    opts = options or SynthOptions()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; pass a folder for the images")
    dev = resolve_device(opts.device)
    prec = resolve_precision(opts.precision, dev)
    use_fast_kernels(dev)
    G, ckpt = load_generator(run, dev)
    net = ckpt.config.net
    _check(net, opts)
    items = collect_items(inputs, inst, net.instance, opts.style_from)
    styler = Styler(Path(run), ckpt, opts, dev) if net.use_features else None
    forward = torch.compile(G, fullgraph=True) if opts.compile else G
    trained = training_size(ckpt)
    width = opts.width if opts.width is not None else (trained[0] if trained else None)
    sizes = {item.key: target_size(item, net, width) for item in items}
    notes = size_notes(items, sizes, trained) + (styler.notes(opts) if styler else [])
    make_dirs(out)
    rows: dict[str, list[tuple[str, str]]] = {}
    unedited: list[str] = []
    workers = opts.workers if opts.workers >= 0 else max(1, os.cpu_count() or 1)
    batches = size_batches(items, lambda item: sizes[item.key], opts.batch_size)
    edits = (opts.relabel, opts.relabel_instance)
    read = functools.partial(_read_batch, net=net, sizes=sizes, edits=edits)
    with Writers(workers, behind=4 * opts.batch_size * opts.variations) as writers:
        for batch in ordered_map(read, batches, workers=workers, ahead=2):
            for r in batch:
                unedited += [r.item.key] if r.missing else []
                if opts.save_labels:
                    shown = (
                        as_rgb(r.label) if net.label_nc == 0 else colorize(r.label, net.label_nc)
                    )
                    writers.submit(_write, out / "labels" / f"{r.item.key}.png", shown, opts)
            jobs = [(r, v) for r in batch for v in range(opts.variations)]
            images: dict[tuple[str, int], np.ndarray] = {}
            for i in range(0, len(jobs), opts.batch_size):
                chunk = jobs[i : i + opts.batch_size]
                rendered = render(forward, net, chunk, styler, dev, prec)
                for (r, v), image in zip(chunk, rendered, strict=True):
                    images[r.item.key, v] = image
                    writers.submit(_write, out / _name(r.item.key, v, opts), image, opts)
            for r in batch:
                rows[r.item.key] = _finish(r.item.key, images, out, opts, net, styler, writers)
            if progress:
                progress(len(rows), len(items))
    sync_folder(out)  # one flush for every image written
    if unedited:
        notes.append(
            f"{len(unedited)} of {len(items)} label maps lack an instance of "
            f"--relabel-instance and are rendered unedited (first: {unedited[0]})"
        )
    labels = [("labels/{}.png", "label map")] if opts.save_labels else []
    table = [(key, [*((n.format(key), c) for n, c in labels), *rows[key]]) for key in sorted(rows)]
    legend = None if net.label_nc == 0 else legend_entries(net.label_nc, net.class_names)
    index = write_index(out, f"p2phd synthesize: {run}", table, legend=legend)
    images_written = [str(out / name) for key in sorted(rows) for name, _ in rows[key]]
    return SynthReport(out, index, images_written, notes, unedited)


def _read_batch(
    group: list[SynthItem],
    *,
    net: NetConfig,
    sizes: dict[str, tuple[int, int]],
    edits: tuple[Sequence[tuple[int, int]], Sequence[tuple[int, int]]],
) -> list[Input]:
    return [read_input(item, net, sizes[item.key], *edits) for item in group]


def _write(path: Path, image: np.ndarray, opts: SynthOptions) -> None:
    write_image(path, image, quality=opts.quality, durable=False)


def _name(key: str, variation: int, opts: SynthOptions) -> str:
    suffix = f"_v{variation}" if opts.variations > 1 else ""
    return f"{key}{suffix}.{opts.image_format}"


def render(
    G: Callable[[Tensor], Tensor],
    net: NetConfig,
    chunk: list[tuple[Input, int]],
    styler: Callable[[Input, int], Tensor] | None,
    device: torch.device,
    precision: str,
) -> list[np.ndarray]:
    """One forward pass of G over (input, variation) jobs: uint8 images. `styler` gives each
    job's `[F, H, W]` features (runs with instance features)."""
    if net.label_nc == 0:
        label = torch.stack([torch.from_numpy(r.label).permute(2, 0, 1) for r, _ in chunk])
        label = unit_image(label.to(device))
    else:
        label = torch.stack([torch.from_numpy(r.label) for r, _ in chunk]).to(device)
    inst = None
    if net.instance:
        inst = torch.stack([torch.from_numpy(r.inst) for r, _ in chunk if r.inst is not None])
        inst = inst.to(device)
    features = torch.stack([styler(r, v) for r, v in chunk]) if styler else None
    with torch.inference_mode(), autocast(precision, device):
        fake = G(encode_input(label, inst, features, label_nc=net.label_nc))
    return [to_uint8(image) for image in fake]


def _finish(
    key: str,
    images: dict[tuple[str, int], np.ndarray],
    out: Path,
    opts: SynthOptions,
    net: NetConfig,
    styler: Styler | None,
    writers: Writers,
) -> list[tuple[str, str]]:
    """The images of one input with their captions; with variations, also their grid."""
    names = [_name(key, v, opts) for v in range(opts.variations)]
    captions = [_caption(opts, v, net, styler) for v in range(opts.variations)]
    if opts.variations > 1:
        sheet = grid([as_rgb(images[key, v]) for v in range(opts.variations)])
        names.append(f"{key}_variations.{opts.image_format}")
        writers.submit(_write, out / names[-1], sheet, opts)
        captions.append(f"all {opts.variations} variations")
    return list(zip(names, captions, strict=True))


def _caption(opts: SynthOptions, v: int, net: NetConfig, styler: Styler | None) -> str:
    """Which style image `v` was rendered with."""
    spec = opts.style
    if styler is None:
        return "synthesized"
    if opts.style_from:
        return "styles encoded from the photo"
    if spec.vary is not None and opts.variations > 1:
        kind, target = spec.vary
        if kind == "class":
            clusters = styler.clusters(target)
            what = f"{class_name(target, net.class_names)} in its cluster"
            return f"variation {v}: {what} {v % clusters}" if clusters else f"variation {v}"
        return f"variation {v}: instance {target} in cluster {v} of its class (cycling)"
    if spec.mode == "cluster":
        base = f"cluster {spec.cluster} of every class"
    else:
        base = f"random styles (seed {spec.seed})"
    return f"variation {v}: {base}, draw {v}" if opts.variations > 1 else base
