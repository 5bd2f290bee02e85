"""What a training run shows: sample grids (label | synthesized | real) and their page, with
the loss curves so far and the run's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from p2phd.checkpoint import RunDir
from p2phd.config import FieldSpec, TrainConfig
from p2phd.data.io import write_png
from p2phd.field_view import field_preview
from p2phd.jsonfile import SchemaError, parse
from p2phd.ops import unit_image
from p2phd.visual import (
    colorize,
    hstack,
    legend_entries,
    loss_curves_svg,
    options_table,
    to_uint8,
    write_index,
)


def write_sample(
    run: RunDir, step: int, batch: dict[str, Any], fake: Tensor, cfg: TrainConfig
) -> np.ndarray:
    """Write label | synthesized | real of the batch's first sample, and refresh the samples'
    index.html: the loss curves so far (from log.jsonl), the run's options, every grid.
    Returns the grid."""
    label_nc = cfg.net.label_nc
    label = batch["label"][0]
    if cfg.net.fields is not None:
        grid = field_grid(label, fake[0], batch["image"][0], cfg.net.fields)
    else:
        shown = (
            to_uint8(unit_image(label))
            if label_nc == 0
            else colorize(label.numpy().astype("int64"), label_nc)
        )
        real = to_uint8(unit_image(batch["image"][0]))
        grid = hstack([shown, to_uint8(fake[0]), real])
    write_png(run.samples / f"step-{step:07d}.png", grid)
    write_samples_page(run, cfg)
    return grid


def write_samples_page(run: RunDir, cfg: TrainConfig) -> None:
    """The samples' index.html: the loss curves and the scores so far (from log.jsonl),
    the run's options, every grid."""
    folder = run.samples
    label_nc = cfg.net.label_nc
    caption = (
        "input | synthesized | target, in physical units"
        if cfg.net.fields is not None
        else "label | synthesized | real"
    )
    names = sorted((p.name for p in folder.glob("step-*.png")), reverse=True)
    options = {k: v for k, v in cfg.to_dict().items() if isinstance(v, dict)}
    records = read_log(run.log)
    extra = "<h2>losses</h2>" + loss_curves_svg(records)
    scored = sorted({k for r in records for k in r if k.startswith("eval_")})
    if scored:  # --eval-every
        extra += "<h2>scores on the held-out split</h2>" + loss_curves_svg(records, terms=scored)
    extra += options_table(options)
    legend = legend_entries(label_nc, cfg.net.class_names) if label_nc else None
    rows = [(name.removesuffix(".png"), [(name, caption)]) for name in names]
    write_index(folder, f"training samples: {run.root}", rows, legend=legend, extra_html=extra)


def field_grid(inputs: Tensor, fake: Tensor, real: Tensor, spec: FieldSpec) -> np.ndarray:
    """Input | synthesized | target of a measured field, each channel in its side's colour
    map, a colour bar after each side."""
    return field_preview(spec, *(t.detach().float().cpu().numpy() for t in (inputs, fake, real)))


def read_log(path: Path) -> list[dict[str, Any]]:
    """The numbers of each record of log.jsonl by step (a line cut short by a crash, or one
    of another shape, is skipped: the page is drawn from what can be read)."""
    records = []
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = parse(line)
            except SchemaError:
                continue
            if isinstance(record, dict) and type(record.get("step")) is int:
                records.append({k: v for k, v in record.items() if type(v) in (int, float)})
    return records
