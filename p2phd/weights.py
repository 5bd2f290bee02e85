"""Reading weights files people bring: `.safetensors`, or PyTorch `.pth` state dicts read
only through torch's weights-only unpickler. Nothing in a file is ever run: a `.pth` that
holds code or objects beyond tensors is refused in one line."""

from __future__ import annotations

import hashlib
import pickle  # only to catch the refusals of torch's weights-only reader
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from p2phd.errors import CheckpointError


def read_state_dict(path: Path, option: str = "") -> dict[str, Tensor]:
    """The tensors of a `.safetensors` or `.pth` file; errors name the file (and the option
    that named it, e.g. `--vgg-weights`)."""
    path = Path(path)
    where = f"{option} {path}" if option else str(path)
    if not path.is_file():
        raise CheckpointError(f"{where}: does not exist; name the local weights file")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found is None:  # not a pickle that torch.save writes
            raise CheckpointError(f"{where}: not a PyTorch weights file") from None
        raise CheckpointError(
            f"{where}: holds code or objects beyond tensors ({found[1]}); p2phd will not run "
            "it (it reads plain state dicts of tensors only)"
        ) from None
    except Exception as exc:  # a damaged file fails anywhere inside the readers
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{where}: not a readable weights file ({reason})") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{where}: does not hold a state dict of tensors")
    return state


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def key_mismatches(expected: dict[str, torch.Size], tensors: dict[str, Tensor]) -> str | None:
    """What keeps `tensors` from filling `expected` (key -> shape) exactly, as one line
    listing the missing, unexpected and mis-shaped keys (a few of each), or None."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = sorted(
        f"{k} {tuple(tensors[k].shape)} != {tuple(shape)}"
        for k, shape in expected.items()
        if k in tensors and tensors[k].shape != shape
    )
    parts = [
        f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes))
        if keys
    ]
    return "; ".join(parts) or None
