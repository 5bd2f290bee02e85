"""Pictures people look at: coloured label maps, image grids and HTML indexes."""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from p2phd.atomic import write_text

# Cityscapes labelIds 0..34 (cityscapesScripts' colours), used when label_nc == 35.
_CITYSCAPES = [
    (0, 0, 0),
    (0, 0, 0),
    (0, 0, 0),
    (0, 0, 0),
    (0, 0, 0),
    (111, 74, 0),
    (81, 0, 81),
    (128, 64, 128),
    (244, 35, 232),
    (250, 170, 160),
    (230, 150, 140),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (180, 165, 180),
    (150, 100, 100),
    (150, 120, 90),
    (153, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 0, 90),
    (0, 0, 110),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
    (0, 0, 142),
]


def palette(label_nc: int) -> np.ndarray:
    """`[label_nc, 3]` uint8 colours: Cityscapes' for 35 classes, else PASCAL's bit pattern."""
    if label_nc == 35:
        return np.array(_CITYSCAPES, dtype=np.uint8)
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
    """`[3, H, W]` float in [-1, 1] -> `[H, W, 3]` uint8."""
    scaled = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def hstack(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images of one height side by side with a white gap."""
    h = images[0].shape[0]
    spacer = np.full((h, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, image in enumerate(images):
        parts += [spacer, image] if i else [image]
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


def write_index(folder: Path, title: str, rows: Sequence[tuple[str, Sequence[str]]]) -> Path:
    """Write `folder/index.html` listing `rows` of (caption, image paths relative to folder)."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for caption, images in rows:
        imgs = "".join(
            f'<a href="{relative_url(p)}"><img src="{relative_url(p)}" loading="lazy"></a>'
            for p in images
        )
        body.append(f"<figure><figcaption>{html.escape(caption)}</figcaption>{imgs}</figure>")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1em}figure{margin:0 0 1.5em}"
        "img{max-width:100%;margin-right:4px;image-rendering:pixelated}"
        "figcaption{font-size:90%;color:#444}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    path = folder / "index.html"
    write_text(path, page)
    return path


def relative_url(path: str) -> str:
    """A file path below the page as an attribute-safe relative URL: every character that
    could end the attribute or start a scheme (`javascript:`) is percent-encoded."""
    return html.escape(urllib.parse.quote(path, safe="/"))
