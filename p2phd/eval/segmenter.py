"""The segmentation net of pix2pixHD's metric: a file the user provides (TorchScript, or a
`torch.export` program `.pt2`) mapping `[N, 3, H, W]` images to `[N, C, h, w]` logits, with
its input convention given as options; and the label maps' mapping onto its classes (a
known dataset's own table: for Cityscapes, labelIds to the 19 trainIds, the others ignored).

A TorchScript file runs TorchScript, not Python, and is loaded only from the path the user
names: load segmenters you trust, as you would any model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from p2phd import datasets
from p2phd.errors import CheckpointError, ConfigError
from p2phd.eval.exported import load_exported
from p2phd.jsonfile import SchemaError, read_json
from p2phd.limits import check_side

IGNORE = 255


@dataclass(frozen=True)
class Convention:
    """How the segmenter wants its input: value range, then per-channel mean and std, then
    (optionally) a fixed size; its logits are resized back to the label map."""

    value_range: Literal["unit", "signed", "byte"] = "unit"  # [0, 1], [-1, 1] or [0, 255]
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: tuple[int, int] | None = None  # (width, height) to resize to; None: as it comes

    def __post_init__(self) -> None:
        if self.value_range not in ("unit", "signed", "byte"):
            raise ConfigError(f"--seg-range {self.value_range}: use unit, signed or byte")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("--seg-mean and --seg-std take 3 numbers each, std > 0")
        if self.size is not None:
            check_side(self.size[0], "--seg-size width")
            check_side(self.size[1], "--seg-size height")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)):
            raise ConfigError(
                f"--seg-mean {','.join(map(str, self.mean))} --seg-std "
                f"{','.join(map(str, self.std))}: give finite numbers"
            )


class Segmenter:
    """Class maps `[N, H, W]` from uint8 RGB images `[N, 3, H, W]`."""

    def __init__(self, path: Path, convention: Convention, device: torch.device) -> None:
        self.path, self.convention, self.device = Path(path), convention, device
        self.net = _load(self.path, device)
        size = convention.size or (64, 64)  # asked once, with a blank image
        blank = torch.zeros(1, 3, size[1], size[0], dtype=torch.uint8)
        self.num_classes = int(self._logits(blank).shape[1])

    def __call__(self, images: Tensor) -> Tensor:
        h, w = images.shape[-2:]
        logits = self._logits(images)
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(
                logits.float(), size=(h, w), mode="bilinear", align_corners=False
            )
        return logits.argmax(1)

    def _logits(self, images: Tensor) -> Tensor:
        c = self.convention
        x = images.to(self.device).float()
        x = {"unit": x / 255, "signed": x / 127.5 - 1, "byte": x}[c.value_range]
        mean = torch.tensor(c.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(c.std, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        if c.size is not None:
            x = F.interpolate(x, size=(c.size[1], c.size[0]), mode="bilinear", align_corners=False)
        try:
            with torch.inference_mode():
                logits = self.net(x)
        except Exception as exc:  # the user's program failed on our input
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"--segmenter {self.path}: failed on a {list(x.shape)} input "
                f"({reason}); check --seg-size and the file"
            ) from None
        if not isinstance(logits, Tensor) or logits.dim() != 4 or logits.shape[0] != len(x):
            raise CheckpointError(
                f"--segmenter {self.path}: gave {_shape(logits)}, not [N, C, "
                "h, w] logits; pass a segmentation net"
            )
        if not bool(torch.isfinite(logits).all()):
            raise CheckpointError(
                f"--segmenter {self.path}: gave NaN or infinite logits on a {list(x.shape)} "
                "input; check the file and its --seg-mean/--seg-std"
            )
        return logits


def _shape(value: Any) -> str:
    return str(list(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def _load(path: Path, device: torch.device) -> Any:
    if not path.is_file():
        raise ConfigError(
            f"--segmenter {path}: does not exist; pass a TorchScript (.pt) or "
            "torch.export (.pt2) file"
        )
    try:
        if path.suffix == ".pt2":  # read without unpickling anything but weights
            return load_exported(path).to(device)
        # TorchScript: a program of TorchScript ops, run by the user's choice of file
        return torch.jit.load(str(path), map_location=device).eval()
    except CheckpointError:
        raise
    except Exception as exc:  # any file that is not such a program is the same user error
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"--segmenter {path}: not a TorchScript or torch.export file ({reason})"
        ) from None


def label_lookup(mapping: str, label_nc: int) -> np.ndarray:
    """An id -> segmenter class table (IGNORE where a label is not scored): `identity`, a
    known dataset's own table by its name (`cityscapes`: labelIds -> trainIds; `ade20k`,
    `coco-stuff`: 0 unlabeled ignored, the others -> the classes their segmenters predict;
    see `p2phd.datasets`), or a JSON file `{"label id": class or 255}`."""
    table = np.full(max(label_nc, 256), IGNORE, np.int64)
    known = datasets.get(mapping)
    if mapping == "identity" or (known is not None and known.label_table is None):
        table[:label_nc] = np.arange(label_nc)
        return table
    if known is not None and known.label_table is not None:
        pairs = dict(known.label_table)
    else:
        try:
            pairs = _label_pairs(read_json(Path(mapping), max_bytes=1 << 20), len(table))
        except (OSError, SchemaError) as exc:
            names = ", ".join(d.name for d in datasets.known() if d.label_table is not None)
            raise ConfigError(
                f"--label-map {mapping}: use identity, {names} or a JSON file "
                f'{{"label id": class}} ({exc})'
            ) from None
    for label, cls in pairs.items():
        if 0 <= label < len(table):
            table[label] = cls
    return table


def _label_pairs(data: object, size: int) -> dict[int, int]:
    """A `--label-map` file's `{"label id": segmenter class or 255}`, every entry checked: a
    label past the table would be dropped without a word."""
    if not isinstance(data, dict):
        raise SchemaError("expected an object of label id: class")
    pairs = {}
    for key, value in data.items():
        if not key.isdigit() or int(key) >= size:
            raise SchemaError(f"{key[:20]!r}: a label id is a number in 0..{size - 1}")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= IGNORE:
            raise SchemaError(f"{key}: a class is a number in 0..{IGNORE} ({IGNORE}: not scored)")
        pairs[int(key)] = value
    return pairs
