"""torch.export programs (`.pt2`) read without running code: the archive's pickled parts
(sample inputs, weights or constants stored as pickles) are read only under torch's
weights-only rule, which admits tensors and plain containers and nothing that calls.

torch.export.load itself falls back to unrestricted unpickling when the weights-only read
fails, and reads "opaque" constants with pickle's `loads`: a file built to exploit that ran
code chosen by its author (issue 23). Here the sample inputs are checked first, naming the
part when it needs more than weights-only; then the program loads with every `torch.load`
forced to weights-only and pickle's `loads` refused, so any other such part is refused too.
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle  # only to catch the refusals of torch's weights-only reader
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from p2phd.errors import CheckpointError


class UnsafePart(Exception):
    """A part of the archive that only unrestricted unpickling could read."""


def load_exported(path: Path) -> Any:
    """The program's module, loaded as described above; a part that needs unrestricted
    pickle is a one-line `CheckpointError` naming it."""
    for name, data in _pickled_parts(path):
        try:
            torch.load(io.BytesIO(data), weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            raise CheckpointError(
                f"--segmenter {path}: its part {name} needs unrestricted pickle, which could "
                f"run code ({_first(exc)}); refused: export the program again with "
                "torch.export.save, or pass a TorchScript file you trust"
            ) from None
    try:
        with _weights_only(), _quiet_loader():
            return torch.export.load(str(path)).module()
    except UnsafePart as exc:
        raise CheckpointError(
            f"--segmenter {path}: {exc}, which could run code; refused: export the program "
            "again with torch.export.save"
        ) from None


def _pickled_parts(path: Path) -> Iterator[tuple[str, bytes]]:
    """The archive's sample inputs: pickles torch.export.load reads with a fallback."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if "/data/sample_inputs/" in f"/{info.filename}":
                    yield info.filename, archive.read(info)
    except zipfile.BadZipFile:
        return  # not an archive: torch.export.load names the problem


@contextlib.contextmanager
def _weights_only() -> Iterator[None]:
    """Every torch.load weights-only and pickle's loads refused, in torch.export.load."""
    from torch.export.pt2_archive import _package

    real_load = torch.load

    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        try:
            return real_load(f, *args, **kwargs)
        except pickle.UnpicklingError as exc:
            raise UnsafePart(f"a pickled part needs more than weights ({_first(exc)})") from None

    class _NoPickle:
        @staticmethod
        def loads(*args: Any, **kwargs: Any) -> Any:
            raise UnsafePart("an opaque constant is a Python pickle")

    saved = (torch.load, _package.pickle)
    torch.load, _package.pickle = load, _NoPickle  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.load, _package.pickle = saved


@contextlib.contextmanager
def _quiet_loader() -> Iterator[None]:
    """torch.export.load logs the traceback of each reader it tries before the next: a
    damaged file would print a dozen lines before its one-line error."""
    logger = logging.getLogger("torch.export")
    saved = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(saved)


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
