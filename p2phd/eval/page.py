"""The page of an evaluation: the scores, the IoU per class, the worst images first."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from p2phd.eval.pairing import Pair
from p2phd.eval.scores import Scores
from p2phd.visual import write_index


def write_page(out: Path, scores: Scores, pairs: list[Pair]) -> Path:
    """index.html: the scores, the per-class IoU table, the worst images first."""
    rows: list[tuple[str, Any]] = [
        (name, value)
        for name, value in (("fid", scores.fid), ("psnr", scores.psnr))
        if value is not None
    ]
    if scores.kid is not None:
        rows.append(("kid", f"{scores.kid.mean:.5f} ± {scores.kid.std:.5f}"))
    for seg, who in (
        (scores.segmentation, "synthesized"),
        (scores.segmentation_real, "real photos"),
    ):
        if seg is not None:
            for name in ("pixel_accuracy", "mean_accuracy", "miou"):
                rows.append((f"{name} ({who})", getattr(seg, name)))
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    extra = f"<p>{scores.count} images</p><table>{table}</table>"
    extra += "".join(f"<p>{html.escape(n)}</p>" for n in scores.notes)
    if scores.segmentation is not None:
        real = scores.segmentation_real.iou if scores.segmentation_real is not None else {}
        cells = "".join(
            f"<tr><td>{html.escape(scores.class_names.get(str(c), str(c)))}</td><td>{v:.3f}</td>"
            f"<td>{_fmt(real.get(c, ''))}</td></tr>"
            for c, v in scores.segmentation.iou.items()
        )
        extra += (
            "<h2>IoU per class</h2><table><tr><th>class</th><th>synthesized</th>"
            f"<th>real</th></tr>{cells}</table><h2>worst images first</h2>"
        )
    by_key = {p.key: p for p in pairs}
    figures = []
    for v in scores.per_image:
        p = by_key[v.key]
        found = (("miou", v.miou), ("psnr", v.psnr))
        caption = ", ".join(f"{k} {value:.3f}" for k, value in found if value is not None)
        shots = [(_rel(p.fake, out), "synthesized")]
        if p.real is not None:
            shots.append((_rel(p.real, out), "real"))
        figures.append((f"{p.key}: {caption}" if caption else p.key, shots))
    title = f"p2phd evaluate: {scores.context.get('run', '')}"
    return write_index(out, title, figures, extra_html=extra)


def _rel(path: Path, out: Path) -> str:
    """`path` relative to the page's folder (links from eval/ to the data folder work too)."""
    return os.path.relpath(Path(path).resolve(), Path(out).resolve())


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))
