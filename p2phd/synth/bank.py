"""The style bank's files: per class, the encoded instance features (`features.safetensors`,
written by encode-features) and their k-means centres and mean (`clusters.safetensors`,
written by cluster), each with a JSON summary beside it; and the centres as lookup tables.

Tensors are named per class, `label_026`, `mean_026`, `source_026` (at least three digits:
class 1000 is `label_1000`); nothing is pickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from p2phd.atomic import save_tensors, write_json_atomic
from p2phd.errors import CheckpointError

FEATURES, CLUSTERS = "features.safetensors", "clusters.safetensors"


def bank_key(kind: str, label: int) -> str:
    """`label_026`, `mean_026`, `source_026`: per-class tensor names in the bank files."""
    return f"{kind}_{label:03d}"


def key_class(name: str) -> int:
    """The class of a bank tensor name (`label_026` -> 26, `mean_1000` -> 1000)."""
    _, _, number = name.rpartition("_")
    if not number.isdigit():
        raise ValueError(f"{name!r} is not a per-class tensor name")
    return int(number)


def save_bank(tensors: dict[str, Tensor], path: Path, meta: dict[str, Any]) -> None:
    """Write a feature or cluster file (safetensors) and its JSON summary beside it."""
    save_tensors(path, tensors)
    write_json_atomic(path.with_suffix(".json"), meta)


def load_bank_file(path: Path, columns: int | None = None) -> dict[str, Tensor]:
    """A feature or cluster file's tensors, finite, the per-class rows 2-D (with `columns`
    numbers each, and the means as many, when given); a damaged file is one line naming it
    and the tensor."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc}); write it again") from exc
    for name, value in tensors.items():
        try:
            key_class(name)
        except ValueError:
            raise CheckpointError(
                f"{path}: holds {name!r}, not a per-class tensor; write it again"
            ) from None
        rows = name.startswith("label_")  # a row per instance (features) or per cluster
        if rows and (value.ndim != 2 or not value.is_floating_point()):
            raise CheckpointError(
                f"{path}: {name} is a {value.dtype} tensor of shape {tuple(value.shape)}, not "
                "one row of numbers per instance or cluster; write it again"
            )
        if columns is not None and (rows or name.startswith("mean_")):
            per = tuple(value.shape[1:] if rows else value.shape)  # a row's or a mean's length
            if per != (columns,):
                raise CheckpointError(
                    f"{path}: {name} has shape {tuple(value.shape)}, but this run's encoder "
                    f"gives {columns} numbers per {'row' if rows else 'mean'}; write it again "
                    "for this run"
                )
        finite = not value.is_floating_point() or bool(torch.isfinite(value).all())
        if not finite:  # k-means and the styles would carry the NaN
            raise CheckpointError(f"{path}: {name} holds NaN or inf; write it again")
    return tensors


@dataclass(frozen=True)
class FeatureBank:
    """Cluster centres and class means as lookup tables for vectorised style sampling.

    `centers` `[total clusters, F]`; `offset[c]` where class c's centres start and `count[c]`
    how many it has (0: none); `means[c]` its mean feature (zeros for unseen classes).
    """

    centers: Tensor
    offset: np.ndarray
    count: np.ndarray
    means: Tensor
    names: tuple[str, ...] = ()  # the classes' names, for messages

    @classmethod
    def load(
        cls, run: Path, label_nc: int, feat_num: int, names: tuple[str, ...] = ()
    ) -> FeatureBank:
        path = Path(run) / CLUSTERS
        if not path.is_file():
            raise CheckpointError(
                f"{path}: missing; run p2phd encode-features {run} DATA, then p2phd cluster "
                f"{run} (or give --style-from PHOTO)"
            )
        data = load_bank_file(path, feat_num)
        size = max(label_nc, 1 + max((key_class(k) for k in data), default=0))
        count, offset = np.zeros(size, np.int64), np.zeros(size, np.int64)
        means, centers = torch.zeros(size, feat_num), []
        total = 0
        for c in range(size):
            if bank_key("mean", c) in data:
                means[c] = data[bank_key("mean", c)]
            if bank_key("label", c) in data:
                centers.append(data[bank_key("label", c)])
                offset[c], count[c] = total, len(centers[-1])
                total += count[c]
        table = torch.cat(centers) if centers else torch.zeros(0, feat_num)
        return cls(table, offset, count, means, names)

    def clusters(self, cls: int) -> int:
        """How many clusters class `cls` has (0: none, or a class the bank never saw)."""
        return int(self.count[cls]) if 0 <= cls < len(self.count) else 0
