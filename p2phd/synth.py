"""Label maps (+ instance maps) -> images, through the same `encode_input` as training.

With a run trained with instance features, every region also gets a style (see
`p2phd.styles`): sampled from the clusters, chosen, mapped, or encoded from a real photo;
`variations` renders several styles of one label map. Class edits (`relabel`) change the
maps before anything else, so boundaries and styles follow them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from p2phd.atomic import make_dirs
from p2phd.checkpoint import Checkpoint, load_strict, require_checkpoint
from p2phd.config import NetConfig
from p2phd.data.augment import scaled_size
from p2phd.data.dataset import size_batches
from p2phd.data.io import (
    IMAGE_SUFFIXES,
    check_ids,
    image_size,
    read_id_map,
    read_rgb,
    resize_ids,
    resize_rgb,
    write_png,
)
from p2phd.errors import ConfigError, DatasetError
from p2phd.features import FeatureBank, load_encoder
from p2phd.nets.encoder import FeatureEncoder
from p2phd.nets.generator import build_generator
from p2phd.ops import encode_input, unit_image
from p2phd.runtime import autocast, resolve_device, resolve_precision, use_fast_kernels
from p2phd.styles import (
    StyleMap,
    StyleSpec,
    parse_pair,
    parse_style,
    parse_vary,
    read_style_map,
    region_features,
    regions,
    relabel,
)
from p2phd.visual import colorize, grid, to_uint8, write_index


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
    """SynthOptions from the command line's strings (`cluster=2`, `class:26`, `21:11` ...)."""
    styled = any(v is not None for v in (style, style_map, vary))
    mode, cluster = parse_style(style or "random")
    mapped = StyleMap()
    if style_map is not None:
        net = require_checkpoint(run).config.net
        mapped = read_style_map(style_map, net.feat_num, net.label_nc)
    spec = StyleSpec(mode, cluster, mapped, parse_vary(vary) if vary else None, seed)
    return SynthOptions(
        style=spec,
        styled=styled,
        relabel=tuple(parse_pair(t, "--relabel") for t in relabels),
        relabel_instance=tuple(parse_pair(t, "--relabel-instance") for t in relabel_instances),
        **plain,
    )


@dataclass(frozen=True, slots=True)
class SynthItem:
    key: str
    label: Path
    inst: Path | None
    photo: Path | None = None


@dataclass(frozen=True, slots=True)
class SynthReport:
    out: Path
    index: Path
    images: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "index": str(self.index),
            "count": len(self.images),
            "images": self.images,
        }


def load_generator(run: Path, device: torch.device) -> tuple[nn.Module, Checkpoint]:
    """The newest G of a run, built from the checkpoint's own config and loaded strictly."""
    ckpt = require_checkpoint(run)
    net = build_generator(ckpt.config.net)
    load_strict(net, ckpt.tensors("G"), f"{ckpt.path}/G.safetensors")
    return net.to(device).eval(), ckpt


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if path.is_file():
        return [path]
    raise DatasetError(f"{path}: no such file or folder")


def _by_stem(paths: Sequence[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in (p for path in paths for p in _files(path)):
        found.setdefault(p.stem, p)
    return found


def collect_items(
    inputs: Sequence[Path], inst: Sequence[Path], need_inst: bool, photos: Sequence[Path] = ()
) -> list[SynthItem]:
    """Label files (folders expanded) paired with instance maps and photos by file stem."""
    labels = [p for path in inputs for p in _files(path)]
    if not labels:
        raise DatasetError(f"{', '.join(map(str, inputs))}: no label maps found")
    instances, styles = _by_stem(inst), _by_stem(photos)
    items, seen = [], set()
    for label in labels:
        if label.stem in seen:
            raise DatasetError(f"{label}: a second label map named {label.stem}; rename one")
        seen.add(label.stem)
        partner = instances.get(label.stem)
        if need_inst and partner is None:
            where = ", ".join(map(str, inst)) or "(no --inst given)"
            raise DatasetError(
                f"{label}: no instance map {label.stem}.* in {where}; this run "
                "uses instance maps: pass --inst FOLDER"
            )
        photo = styles.get(label.stem)
        if photos and photo is None:
            raise DatasetError(
                f"{label}: no photo {label.stem}.* in --style-from {', '.join(map(str, photos))}"
            )
        items.append(SynthItem(label.stem, label, partner if need_inst else None, photo))
    return items


def _target_size(item: SynthItem, net: NetConfig, width: int | None) -> tuple[int, int]:
    """(width, height) the generator will see: the file's size, or resized to `width`."""
    w, h = image_size(item.label)
    m = net.size_multiple
    if width is not None:
        return scaled_size(w, h, width, m)
    if w % m or h % m:
        raise DatasetError(
            f"{item.label}: {w}x{h} is not a multiple of {m} for this run; "
            f"pass --width {max(m, round(w / m) * m)} to resize"
        )
    return w, h


@dataclass
class _Read:
    item: SynthItem
    label: np.ndarray  # [H, W] ids, or [H, W, 3] for RGB-input runs
    inst: np.ndarray | None
    photo: np.ndarray | None


def _read(item: SynthItem, net: NetConfig, size: tuple[int, int], opts: SynthOptions) -> _Read:
    """Read, check, resize and edit one input."""
    if net.label_nc == 0:
        return _Read(item, resize_rgb(read_rgb(item.label), *size), None, None)
    label = check_ids(
        item.label,
        read_id_map(item.label),
        "label",
        net.label_nc,
        "use label maps of this run's classes",
    )
    inst = None
    if item.inst is not None:
        inst = check_ids(item.inst, read_id_map(item.inst, "instance map"), "inst")
    if inst is not None and inst.shape != label.shape:
        raise DatasetError(
            f"{item.inst}: {inst.shape[1]}x{inst.shape[0]} but the label map "
            f"{item.label} is {label.shape[1]}x{label.shape[0]}; use maps of "
            "one size"
        )
    label = resize_ids(label, *size)
    inst = resize_ids(inst, *size) if inst is not None else None
    label, inst = relabel(
        label, inst, list(opts.relabel), list(opts.relabel_instance), net.class_divisor, item.label
    )
    photo = resize_rgb(read_rgb(item.photo), *size) if item.photo else None
    return _Read(item, label, inst, photo)


class _Styler:
    """Feature maps for runs with features: from the cluster bank, or from photos via E."""

    def __init__(
        self, run: Path, ckpt: Checkpoint, opts: SynthOptions, device: torch.device
    ) -> None:
        net = ckpt.config.net
        self.net, self.spec, self.device = net, opts.style, device
        self.encoder: FeatureEncoder | None = None
        self.bank: FeatureBank | None = None
        if opts.style_from:
            self.encoder = load_encoder(ckpt, device)
        else:
            self.bank = FeatureBank.load(run, net.label_nc, net.feat_num)

    def __call__(self, r: _Read, variation: int) -> Tensor:
        """`[F, H, W]` features for one input and variation number."""
        label = torch.from_numpy(r.label)
        pool = torch.from_numpy(r.inst) if self.net.instance_feat and r.inst is not None else label
        if self.encoder is not None:
            assert r.photo is not None
            photo = torch.from_numpy(r.photo).permute(2, 0, 1)[None].to(self.device)
            with torch.inference_mode():
                return self.encoder(unit_image(photo), pool[None].to(self.device))[0]
        assert self.bank is not None
        ids, inverse, classes = regions(pool, label)
        vectors = region_features(
            ids.numpy(), classes.numpy(), self.bank, self.spec, r.item.key, variation
        )
        h, w = label.shape
        return vectors[inverse].reshape(h, w, -1).permute(2, 0, 1).to(self.device)


def _check(net: NetConfig, opts: SynthOptions) -> None:
    """Options that cannot work with this run are refused before any work."""
    if not net.use_features and (opts.styled or opts.style_from or opts.variations > 1):
        raise ConfigError(
            "--style, --style-map, --style-from, --vary and --variations pick "
            "instance styles; this run was trained without features "
            "(--instance-feat / --label-feat)"
        )
    classes = [c for pair in opts.relabel for c in pair] + [d for _, d in opts.relabel_instance]
    if opts.style.vary is not None and opts.style.vary[0] == "class":
        classes.append(opts.style.vary[1])
    unknown = [c for c in classes if c >= max(net.label_nc, 1)]
    if unknown:
        raise ConfigError(
            f"class {unknown[0]} is unknown: this run has {net.label_nc} "
            f"classes (0..{net.label_nc - 1})"
        )
    if (opts.relabel or opts.relabel_instance) and net.label_nc == 0:
        raise ConfigError("--relabel needs label maps; this run takes RGB input images")
    if opts.variations < 1 or opts.batch_size < 1:
        raise ConfigError("--variations and --batch-size must be >= 1")
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
    """Synthesize PNGs for the label maps into `out`, with an index.html beside them."""
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
    styler = _Styler(Path(run), ckpt, opts, dev) if net.use_features else None
    sizes = {item.key: _target_size(item, net, opts.width) for item in items}
    make_dirs(out / "labels")
    rows: dict[str, list[str]] = {}
    for group in size_batches(items, lambda item: sizes[item.key], opts.batch_size):
        batch = [_read(item, net, sizes[item.key], opts) for item in group]
        for r in batch:
            shown = r.label if net.label_nc == 0 else colorize(r.label, net.label_nc)
            write_png(out / "labels" / f"{r.item.key}.png", shown)
        jobs = [(r, v) for r in batch for v in range(opts.variations)]
        for i in range(0, len(jobs), opts.batch_size):
            chunk = jobs[i : i + opts.batch_size]
            _render(G, net, chunk, styler, out, dev, prec, opts.variations)
        for r in batch:
            rows[r.item.key] = _finish(r.item.key, out, opts.variations)
        if progress:
            progress(len(rows), len(items))
    table = [(key, [f"labels/{key}.png", *rows[key]]) for key in sorted(rows)]
    index = write_index(out, f"p2phd synthesize: {run}", table)
    return SynthReport(out, index, [str(out / p) for key in sorted(rows) for p in rows[key]])


def _name(key: str, variation: int, variations: int) -> str:
    return f"{key}.png" if variations == 1 else f"{key}_v{variation}.png"


def _render(
    G: nn.Module,
    net: NetConfig,
    chunk: list[tuple[_Read, int]],
    styler: _Styler | None,
    out: Path,
    device: torch.device,
    precision: str,
    variations: int,
) -> None:
    """One forward pass of G over up to batch-size (input, variation) jobs; write the PNGs."""
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
    for (r, v), image in zip(chunk, fake, strict=True):
        write_png(out / _name(r.item.key, v, variations), to_uint8(image))


def _finish(key: str, out: Path, variations: int) -> list[str]:
    """The image names of one input; with variations, also write them as one grid."""
    names = [_name(key, v, variations) for v in range(variations)]
    if variations > 1:
        images = [read_rgb(out / name) for name in names]
        write_png(out / f"{key}_variations.png", grid(images))
        names.append(f"{key}_variations.png")
    return names
