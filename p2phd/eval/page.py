"""The page of an evaluation: the scores, the IoU per class, the worst images first."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2phd.visual import write_index

if TYPE_CHECKING:
    from p2phd.eval.evaluate import Pair


def write_page(out: Path, scores: dict[str, Any], pairs: list[Pair]) -> Path:
    """index.html: the scores, the per-class IoU table, the worst images first."""
    rows: list[tuple[str, Any]] = [(k, scores[k]) for k in ("fid", "psnr") if k in scores]
    if "kid" in scores:
        rows.append(("kid", f"{scores['kid']['mean']:.5f} ± {scores['kid']['std']:.5f}"))
    for kind in ("segmentation", "segmentation_real"):
        if kind in scores:
            who = "synthesized" if kind == "segmentation" else "real photos"
            for name in ("pixel_accuracy", "mean_accuracy", "miou"):
                rows.append((f"{name} ({who})", scores[kind][name]))
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    extra = f"<p>{scores['count']} images</p><table>{table}</table>"
    extra += "".join(f"<p>{html.escape(n)}</p>" for n in scores["notes"])
    if "segmentation" in scores:
        real = scores.get("segmentation_real", {}).get("iou", {})
        cells = "".join(
            f"<tr><td>{html.escape(scores['class_names'].get(c, c))}</td><td>{v:.3f}</td>"
            f"<td>{_fmt(real.get(c, ''))}</td></tr>"
            for c, v in scores["segmentation"]["iou"].items()
        )
        extra += (
            "<h2>IoU per class</h2><table><tr><th>class</th><th>synthesized</th>"
            f"<th>real</th></tr>{cells}</table><h2>worst images first</h2>"
        )
    by_key = {p.key: p for p in pairs}
    figures = []
    for v in scores["per_image"]:
        p = by_key[v["key"]]
        caption = ", ".join(f"{k} {v[k]:.3f}" for k in ("miou", "psnr") if k in v)
        shots = [(_rel(p.fake, out), "synthesized")]
        if p.real is not None:
            shots.append((_rel(p.real, out), "real"))
        figures.append((f"{p.key}: {caption}" if caption else p.key, shots))
    return write_index(out, f"p2phd evaluate: {scores.get('run', '')}", figures, extra_html=extra)


def _rel(path: Path, out: Path) -> str:
    """`path` relative to the page's folder (links from eval/ to the data folder work too)."""
    return os.path.relpath(Path(path).resolve(), Path(out).resolve())


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))
