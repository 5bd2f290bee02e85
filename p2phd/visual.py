"""Pictures people look at: coloured label maps, image grids and HTML indexes."""

from __future__ import annotations

import html
import math
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from p2phd import datasets
from p2phd.atomic import write_text
from p2phd.loss_terms import LossTerms


def palette(label_nc: int) -> np.ndarray:
    """`[label_nc, 3]` uint8 colours: a known dataset's own for its number of classes
    (Cityscapes' for 35), else PASCAL's bit pattern."""
    for known in datasets.known():
        if known.colours is not None and len(known.colours) == label_nc:
            return np.array(known.colours, dtype=np.uint8)
    ids = np.arange(label_nc)
    colours = np.zeros((label_nc, 3), dtype=np.int64)
    for bit in range(8):  # 8 rounds of bit interleaving, not a loop over pixels
        for channel in range(3):
            colours[:, channel] |= ((ids >> (3 * bit + channel)) & 1) << (7 - bit)
    return colours.astype(np.uint8)


def colorize(label_map: np.ndarray, label_nc: int) -> np.ndarray:
    """`[H, W]` class ids -> `[H, W, 3]` uint8 colours by one table lookup."""
    return palette(max(label_nc, int(label_map.max()) + 1))[label_map]


def to_uint8(image: Tensor) -> np.ndarray:
    """`[C, H, W]` float in [-1, 1] -> `[H, W, 3]` uint8, or `[H, W]` for one channel."""
    scaled = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    array = scaled.to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A grey `[H, W]` (or `[H, W, 1]`) image as `[H, W, 3]`; RGB as it is."""
    return (
        np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
        if image.ndim == 2 or (image.shape[-1] == 1)
        else image
    )


def hstack(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images of one height side by side with a white gap (grey ones shown as RGB)."""
    h = images[0].shape[0]
    spacer = np.full((h, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, image in enumerate(images):
        parts += [spacer, as_rgb(image)] if i else [as_rgb(image)]
    return np.concatenate(parts, axis=1)


def grid(images: Sequence[np.ndarray], columns: int = 4, gap: int = 4) -> np.ndarray:
    """Images of one size in rows of `columns`, white gaps between them."""
    rows = [hstack(images[i : i + columns], gap) for i in range(0, len(images), columns)]
    width = rows[0].shape[1]
    padded = [
        np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows
    ]
    spacer = np.full((gap, width, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, row in enumerate(padded):
        parts += [spacer, row] if i else [row]
    return np.concatenate(parts, axis=0)


Image = str | tuple[str, str]  # a path relative to the page, or (path, caption)
_STYLE = (
    "body{font-family:sans-serif;margin:1em;color:#222}figure{margin:0 0 1.5em}"
    ".shot{display:inline-block;margin:0 6px 6px 0;vertical-align:top}"
    ".shot span{display:block;font-size:85%;color:#555;max-width:512px}"
    "img{min-width:512px;max-width:100%;height:auto;image-rendering:pixelated}"
    "figcaption{font-weight:bold;margin-bottom:4px}"
    ".legend span{display:inline-block;margin:0 10px 4px 0;font-size:90%}"
    ".legend i{display:inline-block;width:14px;height:14px;margin-right:4px;"
    "vertical-align:middle;border:1px solid #888}"
    "table{border-collapse:collapse;font-size:90%}td,th{padding:2px 8px;text-align:left}"
)


def write_index(
    folder: Path,
    title: str,
    rows: Sequence[tuple[str, Sequence[Image]]],
    *,
    legend: Sequence[tuple[str, tuple[int, int, int]]] | None = None,
    extra_html: str = "",
) -> Path:
    """Write `folder/index.html`: `rows` of (caption, images), each image with its own
    caption; small images are shown enlarged (pixelated). `legend` lists the label colours;
    `extra_html` (made by p2phd, trusted) goes above the rows."""
    body = [f"<h1>{html.escape(title)}</h1>", extra_html]
    if legend:
        items = "".join(
            f'<span><i style="background:rgb{tuple(rgb)}"></i>{html.escape(name)}</span>'
            for name, rgb in legend
        )
        body.append(f'<div class="legend">{items}</div>')
    for caption, images in rows:
        shots = []
        for image in images:
            name, note = (image, "") if isinstance(image, str) else image
            url = relative_url(name)
            shots.append(
                f'<div class="shot"><a href="{url}"><img src="{url}" loading="lazy"></a>'
                + (f"<span>{html.escape(note)}</span>" if note else "")
                + "</div>"
            )
        body.append(
            f"<figure><figcaption>{html.escape(caption)}</figcaption>{''.join(shots)}</figure>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(part for part in body if part)
        + "</body></html>\n"
    )
    path = folder / "index.html"
    write_text(path, page)
    return path


def legend_entries(
    label_nc: int, names: Sequence[str] = ()
) -> list[tuple[str, tuple[int, int, int]]]:
    """(name or "class i", colour) of every class, in the colours of `colorize`."""
    colours = palette(label_nc).tolist()
    out = []
    for i, (r, g, b) in enumerate(colours):
        out.append((f"{i} {names[i]}" if i < len(names) else f"class {i}", (r, g, b)))
    return out


def relative_url(path: str) -> str:
    """A file path below the page as an attribute-safe relative URL: every character that
    could end the attribute or start a scheme (`javascript:`) is percent-encoded."""
    return html.escape(urllib.parse.quote(path, safe="/"))


def loss_curves_svg(
    records: Sequence[dict[str, float]],
    width: int = 300,
    height: int = 130,
    terms: Sequence[str] = LossTerms._fields,
) -> str:
    """Small multiples of the logged `terms` (the loss terms; or the scores of
    --eval-every) against the step, as inline SVG (one panel per term that is on: a term
    that stays 0, such as g_vgg without the VGG loss, is left out). Each panel is scaled
    to its own range, written beside it."""
    panels = []
    for term in terms:
        points = [(r["step"], r[term]) for r in records if term in r and math.isfinite(r[term])]
        if not points or all(v == 0 for _, v in points):
            continue
        steps, values = [p[0] for p in points], [p[1] for p in points]
        x0, x1 = min(steps), max(max(steps), min(steps) + 1)
        y0, y1 = min(values), max(values)
        y1 = y1 if y1 > y0 else y0 + 1e-9
        pad = 8
        xy = " ".join(
            f"{pad + (s - x0) / (x1 - x0) * (width - 2 * pad):.1f},"
            f"{height - pad - (v - y0) / (y1 - y0) * (height - 2 * pad - 14):.1f}"
            for s, v in points
        )
        panels.append(
            f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'style="border:1px solid #ccc;margin:0 6px 6px 0;background:#fff">'
            f'<text x="{pad}" y="13" font-size="12" font-family="sans-serif">{term}: '
            f"{values[-1]:.4g} (min {y0:.3g}, max {y1:.3g}; steps {x0}..{max(steps)})</text>"
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{xy}"/></svg>'
        )
    return "".join(panels)


def options_table(sections: dict[str, dict[str, object]]) -> str:
    """A run's options as an HTML table, section by section."""
    rows = "".join(
        f"<tr><th>{html.escape(section)}</th><td>{html.escape(key)}</td>"
        f"<td>{html.escape(str(value))}</td></tr>"
        for section, values in sections.items()
        for key, value in values.items()
    )
    return f"<details><summary>options</summary><table>{rows}</table></details>"
