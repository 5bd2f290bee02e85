"""Label maps (+ instance maps) -> images, through the same `encode_input` as training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from p2phd.checkpoint import Checkpoint, load_strict, require_checkpoint
from p2phd.config import TrainConfig
from p2phd.data.io import (
    IMAGE_SUFFIXES,
    image_size,
    read_id_map,
    read_rgb,
    resize_ids,
    resize_rgb,
    write_png,
)
from p2phd.errors import DatasetError
from p2phd.nets.generator import build_generator
from p2phd.ops import encode_input
from p2phd.runtime import autocast, resolve_device, resolve_precision
from p2phd.visual import colorize, to_uint8, write_index


@dataclass(frozen=True, slots=True)
class SynthItem:
    key: str
    label: Path
    inst: Path | None


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


def collect_items(inputs: Sequence[Path], inst: Sequence[Path], need_inst: bool) -> list[SynthItem]:
    """Label files (folders expanded) paired with instance maps by file stem."""
    labels = [p for path in inputs for p in _files(path)]
    if not labels:
        raise DatasetError(f"{', '.join(map(str, inputs))}: no label maps found")
    by_stem: dict[str, Path] = {}
    for p in (p for path in inst for p in _files(path)):
        by_stem.setdefault(p.stem, p)
    items, seen = [], set()
    for label in labels:
        if label.stem in seen:
            raise DatasetError(f"{label}: a second label map named {label.stem}; rename one")
        seen.add(label.stem)
        partner = by_stem.get(label.stem)
        if need_inst and partner is None:
            where = ", ".join(map(str, inst)) or "(no --inst given)"
            raise DatasetError(
                f"{label}: no instance map {label.stem}.* in {where}; this run "
                "uses instance maps: pass --inst FOLDER"
            )
        items.append(SynthItem(label.stem, label, partner if need_inst else None))
    return items


def _target_size(item: SynthItem, cfg: TrainConfig, width: int | None) -> tuple[int, int]:
    """(width, height) the generator will see: the file's size, or resized to `width`."""
    w, h = image_size(item.label)
    m = cfg.net.size_multiple
    if width is not None:
        w, h = width, max(m, round(h * width / w / m) * m)
    if w % m or h % m:
        raise DatasetError(
            f"{item.label}: {w}x{h} is not a multiple of {m} for this run; "
            f"pass --width {max(m, round(w / m) * m)} to resize"
        )
    return w, h


def _read(
    item: SynthItem, cfg: TrainConfig, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read, check and resize one input to `size`."""
    net = cfg.net
    if net.label_nc == 0:
        label = resize_rgb(read_rgb(item.label), *size)
    else:
        label = read_id_map(item.label)
        if label.max() >= net.label_nc:
            raise DatasetError(
                f"{item.label}: label {label.max()} >= label_nc {net.label_nc} "
                "of this run; use maps with the training classes"
            )
    inst = read_id_map(item.inst, "instance map") if item.inst else None
    if inst is not None and inst.shape != label.shape[:2]:
        raise DatasetError(
            f"{item.inst}: {inst.shape[1]}x{inst.shape[0]} but the label map "
            f"{item.label} is {label.shape[1]}x{label.shape[0]}; use maps of "
            "one size"
        )
    if net.label_nc:
        label = resize_ids(label, *size)
    return label, resize_ids(inst, *size) if inst is not None else None


def synthesize(
    run: Path,
    inputs: Sequence[Path],
    out: Path,
    *,
    inst: Sequence[Path] = (),
    batch_size: int = 4,
    width: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> SynthReport:
    """Synthesize one PNG per label map into `out`, with an index.html beside them."""
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    G, ckpt = load_generator(run, dev)
    cfg = ckpt.config
    items = collect_items(inputs, inst, cfg.net.instance)
    sizes = {item.key: _target_size(item, cfg, width) for item in items}
    items.sort(key=lambda item: (sizes[item.key], item.key))  # batch one size together
    batches = []
    for _, same_size in groupby(items, key=lambda item: sizes[item.key]):
        group = list(same_size)
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    (out / "labels").mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    for batch in batches:
        _run_batch(
            G, cfg, [(item, *_read(item, cfg, sizes[item.key])) for item in batch], out, dev, prec
        )
        done += [item.key for item in batch]
        if progress:
            progress(len(done), len(items))
    order = sorted(done)
    index = write_index(
        out,
        f"p2phd synthesize: {run}",
        [(key, [f"labels/{key}.png", f"{key}.png"]) for key in order],
    )
    return SynthReport(out, index, [str(out / f"{key}.png") for key in order])


def _run_batch(
    G: nn.Module,
    cfg: TrainConfig,
    chunk: list[Any],
    out: Path,
    device: torch.device,
    precision: str,
) -> None:
    net = cfg.net
    if net.label_nc == 0:
        label = torch.stack([torch.from_numpy(r[1]).permute(2, 0, 1) for r in chunk])
        label = label.to(device).float() / 127.5 - 1
    else:
        label = torch.stack([torch.from_numpy(r[1]) for r in chunk]).to(device)
    inst = torch.stack([torch.from_numpy(r[2]) for r in chunk]).to(device) if net.instance else None
    with torch.inference_mode(), autocast(precision, device):
        fake = G(encode_input(label, inst, label_nc=net.label_nc))
    for (item, label_np, _), image in zip(chunk, fake, strict=True):
        write_png(out / f"{item.key}.png", to_uint8(image))
        shown = label_np if net.label_nc == 0 else colorize(label_np, net.label_nc)
        write_png(out / "labels" / f"{item.key}.png", shown)
