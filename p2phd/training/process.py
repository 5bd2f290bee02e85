"""The training process itself: the run lock, the stop signals, the loader workers.

What makes a training process safe to kill and to rerun at once (see the README's "What
p2phd guarantees"): the lock belongs to this process alone, SIGINT and SIGTERM only ask the
loop to stop at a step boundary, and the loader workers die with the trainer.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import sys
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from p2phd.atomic import write_error, writing
from p2phd.errors import CheckpointError

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
