"""An oracle segmenter for the toy scenes: the exact rule of how they are painted.

Every toy pixel is painted flat in one of a known set of colours (a class's colour, a sky
gradient, foliage shades, car palettes with their windows and sills), plus noise of 3 units;
no edge is blended. So the class of a pixel is the class of its nearest colour, and the rule
segments real toy photos almost perfectly: on synthesized ones its mIoU measures the
generator, as a trained segmenter does for Cityscapes. It is written as a `torch.export`
program (`.pt2`), a format `p2phd evaluate --segmenter` reads, so the toy takes the same
path as real data.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.export import Dim

from p2phd.atomic import atomic_path
from p2phd.datasets import toy


def _prototypes() -> tuple[np.ndarray, np.ndarray]:
    """`[K, 3]` colours (0..255) and `[K]` classes: every colour the toy paints."""
    colours: list[tuple[float, float, float]] = []
    classes: list[int] = []

    def add(cls: int, *rgbs: np.ndarray | tuple[float, ...]) -> None:
        for rgb in rgbs:
            colours.append(tuple(float(v) for v in rgb))  # type: ignore[arg-type]
            classes.append(cls)

    top, bottom = np.array([70, 130, 210.0]), np.array([185, 210, 235.0])
    add(toy.SKY, *((1 - t) * top + t * bottom for t in np.linspace(0, 1, 24)))
    add(toy.BUILDING, *map(np.array, toy.WALLS), np.array(toy.GLASS))
    add(toy.VEGETATION, *(np.array([70, 130, 55.0]) * k for k in np.linspace(0.75, 1.25, 11)))
    add(toy.SIDEWALK, np.array([140, 135, 128.0]), np.array([178, 172, 162.0]))
    add(toy.ROAD, *(np.array([g, g, g + 4.0]) for g in range(80, 112, 3)))
    add(toy.ROAD, np.array([220, 220, 210.0]))  # lane marks
    add(toy.POLE, np.array([70, 70, 78.0]))
    for rgb in map(np.array, toy.CAR_PALETTE):
        add(toy.CAR, rgb, 0.88 * rgb, 0.65 * rgb + 0.35 * np.array(toy.WINDSCREEN))
    add(toy.CAR, np.array([30, 30, 32.0]))  # wheels
    add(toy.PERSON, *map(np.array, toy.PERSON_PALETTE), np.array([225, 185, 150.0]))
    add(toy.PERSON, np.array([50, 50, 60.0]))  # legs
    return np.array(colours, np.float32), np.array(classes, np.int64)


class ColourRule(nn.Module):
    """`[N, 3, H, W]` RGB in [0, 1] -> `[N, classes, H, W]` logits: minus the squared
    distance to each class's nearest colour."""

    def __init__(self, colours: Tensor, classes: Tensor, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("colours", colours)
        self.register_buffer("classes", classes)
        self.num_classes = num_classes

    def forward(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        x = (images * 255).reshape(n, 3, h * w)
        c = self.get_buffer("colours")
        d = (x * x).sum(1, keepdim=True) - 2 * torch.einsum("kc,ncp->nkp", c, x)
        d = d + (c * c).sum(1)[None, :, None]
        out = torch.full((n, self.num_classes, h * w), -1e30, dtype=d.dtype, device=d.device)
        index = self.get_buffer("classes")[None, :, None].expand(n, -1, h * w)
        out = out.scatter_reduce(1, index, -d, reduce="amax")
        return out.reshape(n, self.num_classes, h, w)


def toy_segmenter() -> ColourRule:
    colours, classes = _prototypes()
    return ColourRule(torch.from_numpy(colours), torch.from_numpy(classes), toy.TOY_LABEL_NC)


@functools.cache
def _exported() -> bytes:
    """The oracle as a `torch.export` program for any batch and size (exported once per
    process: tracing takes seconds)."""
    batch, height, width = (Dim(n, min=m, max=8192) for n, m in (("n", 1), ("h", 8), ("w", 8)))
    program = torch.export.export(
        toy_segmenter().eval(),
        (torch.rand(2, 3, 64, 128),),
        dynamic_shapes={"images": {0: batch, 2: height, 3: width}},
    )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def write_toy_segmenter(path: Path) -> Path:
    """Write the oracle (inputs RGB in [0, 1], any size) to `path` (a `.pt2`)."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(_exported())
    return Path(path)
