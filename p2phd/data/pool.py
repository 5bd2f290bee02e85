"""Prep's pool of worker processes: results as jobs finish, a stop that lands in prep's own
code, and workers that die with prep.

Ctrl-C and SIGTERM raise an exception wherever the main thread is. Raised inside the pool's
own code (while `submit` starts a worker, or while `wait` holds the futures' locks) they can
leave it half-built or its locks held, and prep then hangs or fails in its cleanup instead of
stopping in one line. So the signals are held while that code runs and delivered between its
calls, which CPython's own resource tracker does for the same reason.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from typing import Any

FEW_ITEMS = 16  # below this many jobs one process does them: a pool costs more than it saves
STOPS = {signal.SIGINT, signal.SIGTERM}
POLL_S = 0.2  # how long a held signal can wait at most
IN_FLIGHT_PER_WORKER = 4  # jobs queued ahead per worker: enough to keep each one busy


@contextmanager
def stops_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends, and are raised there."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _held() -> Any:
    """`stops_held()` where the platform can hold signals (not Windows)."""
    return stops_held() if hasattr(signal, "pthread_sigmask") else nullcontext()


def outcomes(
    jobs: Sequence[Any], workers: int, work: Callable[[Any], Any]
) -> Generator[tuple[int, Any], None, None]:
    """(index, result) pairs of `work` over `jobs` as they finish, in this process or in a
    pool (workers 0: one per CPU core, and this process alone below `FEW_ITEMS`)."""
    if workers == 0:
        workers = 1 if len(jobs) < FEW_ITEMS else max(1, os.cpu_count() or 1)
    if workers == 1 or len(jobs) < 2:
        for index, job in enumerate(jobs):
            yield index, work(job)
        return
    # Not fork: the CLI's progress bar runs a thread, and forking a threaded process can hang.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()  # with the signals open, as are the workers it forks
    size = min(workers, len(jobs))
    with _held():
        pool = ProcessPoolExecutor(size, context, _worker_init, (os.getpid(),))
    with pool:
        waiting = iter(enumerate(jobs))
        running: dict[Future[Any], int] = {}
        try:
            while True:
                with _held():  # a stop waits for the end of this block, at most POLL_S
                    for index, job in itertools.islice(
                        waiting, size * IN_FLIGHT_PER_WORKER - len(running)
                    ):
                        running[pool.submit(work, job)] = index
                    if not running:
                        break
                    done, _ = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    yield running.pop(future), future.result()
        finally:
            with _held():
                for future in running:
                    future.cancel()


def _worker_init(parent: int) -> None:
    """Workers leave Ctrl-C to prep and die with it: a kill -9 or SIGTERM of prep alone must
    not leave them running (holding the caller's pipe, `prep ... | cat`). Their parent is the
    fork server, so a thread watches prep itself. SIGTERM works on them again (a worker
    starts with the signals prep held when it asked for it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # the id now belongs to another user's process
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="p2phd-prep-parent").start()
