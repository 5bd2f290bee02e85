"""The training loop's surroundings: the run lock, signals, loader workers, sample grids."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from torch import Tensor

from p2phd.atomic import write_error, writing
from p2phd.checkpoint import RunDir
from p2phd.config import TrainConfig
from p2phd.data.io import write_png
from p2phd.errors import CheckpointError
from p2phd.ops import unit_image
from p2phd.visual import (
    colorize,
    hstack,
    legend_entries,
    loss_curves_svg,
    options_table,
    to_uint8,
    write_index,
)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class RunLock:
    """An exclusive lock on the run folder: two trainings never interleave checkpoints.

    A POSIX record lock (`lockf`), which belongs to this process alone: a `flock` would be
    shared with the loader workers forked while it is held, and outlive a killed trainer
    until they noticed, refusing the immediate rerun that torchrun --max-restarts makes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> RunLock:
        with writing(self.path):
            self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise write_error(self.path, exc) from None
            raise CheckpointError(
                f"{self.path.parent}: another p2phd process is training this run; "
                "wait for it or stop it first"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the record lock


class StopSignals:
    """SIGINT and SIGTERM only set `signum`; the loop saves and stops at the next step.

    A second SIGINT restores the default handler and interrupts at once (the checkpoint
    writer is atomic, so that is safe). Outside the main thread nothing is installed.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopSignals:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def worker_init(worker_id: int, *, trainer: int) -> None:
    """Loader workers ignore Ctrl-C and SIGTERM (the trainer, process id `trainer`, stops
    them when it is done) and die with the trainer: a kill -9 leaves no worker behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != trainer:  # the trainer died before prctl took effect
            os._exit(0)


def write_sample(run: RunDir, step: int, batch: dict[str, Any], fake: Tensor,
                 cfg: TrainConfig) -> Path:  # fmt: skip
    """Write label | synthesized | real of the batch's first sample, and refresh the samples'
    index.html: the loss curves so far (from log.jsonl), the run's options, every grid."""
    label_nc = cfg.net.label_nc
    label = batch["label"][0]
    shown = (
        to_uint8(unit_image(label))
        if label_nc == 0
        else colorize(label.numpy().astype("int64"), label_nc)
    )
    real = to_uint8(unit_image(batch["image"][0]))
    grid = hstack([shown, to_uint8(fake[0]), real])
    folder = run.samples
    path = folder / f"step-{step:07d}.png"
    write_png(path, grid)
    names = sorted((p.name for p in folder.glob("step-*.png")), reverse=True)
    options = {k: v for k, v in cfg.to_dict().items() if isinstance(v, dict)}
    extra = "<h2>losses</h2>" + loss_curves_svg(read_log(run.log)) + options_table(options)
    legend = legend_entries(label_nc, cfg.net.class_names) if label_nc else None
    rows = [(name.removesuffix(".png"), [(name, "label | synthesized | real")]) for name in names]
    write_index(folder, f"training samples: {run.root}", rows, legend=legend, extra_html=extra)
    return path


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of log.jsonl (a line cut short by a crash is skipped)."""
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records
