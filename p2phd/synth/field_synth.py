"""`synthesize` for runs trained on measured fields: input files read as measured, mapped to
[-1, 1] by the run's recorded input scale, rendered, and mapped back to physical units by
its output scale. Each output is written in its input's format (`.npy`, float32 TIFF, FITS
with the input's header and a HISTORY card naming the run, 16-bit PNG), beside a preview
in the run's colour maps with colour bars, and an index.html of the previews."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from p2phd.atomic import make_dirs
from p2phd.config import FieldSpec, NetConfig
from p2phd.data.fields import (
    FIELD_SUFFIXES,
    FITS,
    check_finite,
    normalise,
    physical,
    read_field,
    read_fits,
    resize_field,
    write_field,
)
from p2phd.data.io import not_there, write_png
from p2phd.data.names import name_key
from p2phd.errors import DatasetError
from p2phd.field_view import field_preview
from p2phd.synth.inputs import fit_size
from p2phd.visual import write_index

PREVIEWS = "previews"


def field_files(inputs: Sequence[Path]) -> list[Path]:
    """The field files of the inputs (folders searched, subfolders too), in order."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in FIELD_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise DatasetError(f"{path}: {not_there(path)}; pass the input fields")
    if not files:
        where = ", ".join(map(str, inputs))
        raise DatasetError(f"{where}: no field files ({', '.join(FIELD_SUFFIXES)}) found")
    return files


def read_normalised(
    path: Path, net: NetConfig, width: int | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """One input file as G takes it: checked, resized in physical units, `[C, H, W]`
    float32 in [-1, 1]; and its own (width, height)."""
    spec = _spec(net)
    values, _ = check_finite(path, read_field(path), spec.fill)
    if len(values) != spec.input.channels:
        raise DatasetError(
            f"{path}: has {len(values)} channels, but the run takes {spec.input.channels}; "
            "give fields like its training inputs"
        )
    _, h, w = values.shape
    size = fit_size(w, h, net, width, path)
    unit, _ = normalise(spec.input, resize_field(values, *size))
    return unit, (w, h)


def render_fields(
    synth: Any,
    inputs: Sequence[Path],
    out: Path,
    width: int | None,
    batch_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[str], Path]:
    """Render every input field into `out` (see the module's docstring); the outputs'
    paths and the page."""
    net: NetConfig = synth.net
    spec = _spec(net)
    files = field_files(inputs)
    keys = [name_key(p.name) for p in files]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise DatasetError(f"{inputs[0]}: two input fields have the key {twice!r}; rename one")
    trained = synth.run.train_size
    width = width if width is not None else (trained[0] if trained else None)
    make_dirs(out / PREVIEWS)
    history = f"p2phd synthesize: run {synth.run.root} step {synth.run.step}"
    written, rows = [], []
    for start in range(0, len(files), batch_size):
        group = files[start : start + batch_size]
        read = [read_normalised(p, net, width) for p in group]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, (unit, _) in enumerate(read):
            by_size.setdefault(unit.shape, []).append(i)
        rendered: dict[int, np.ndarray] = {}
        for indices in by_size.values():
            outputs = synth.render_unit([read[i][0] for i in indices])
            rendered.update(zip(indices, outputs, strict=True))
        for i, path in enumerate(group):
            key = name_key(path.name)
            unit, own = read[i]
            result = resize_field(physical(spec.output, rendered[i]), *own)
            header = read_fits(path)[1] if path.suffix.lower() in FITS else None
            if header is not None and spec.output.units:
                header["BUNIT"] = spec.output.units  # the values are the output's now
            target = out / f"{key}{path.suffix.lower()}"
            write_field(target, result, header, history)
            write_png(out / PREVIEWS / f"{key}.png", field_preview(spec, unit, rendered[i]))
            written.append(str(target))
            rows.append((key, [(f"{PREVIEWS}/{key}.png", f"input | {target.name}")]))
        if progress:
            progress(len(written), len(files))
    index = write_index(out, f"p2phd synthesize: {synth.run.root}", rows)
    return written, index


def _spec(net: NetConfig) -> FieldSpec:
    assert net.fields is not None, "a measured-field run"
    return net.fields
