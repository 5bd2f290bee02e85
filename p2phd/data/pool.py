"""Prep's pool of worker processes: results as jobs finish, a stop that lands in prep's own
code, and workers that die with prep.

Ctrl-C and SIGTERM raise an exception wherever the main thread is. Raised inside the pool's
own code (while `submit` starts a worker, or while `wait` takes the futures' locks one by one)
they can leave it half-built or a lock held, and prep then hangs or fails in its cleanup
instead of stopping in one line. So while that code runs, a stop is only noted, and it is
raised when the call returns. (Blocking the signals would not do: the kernel hands a signal
to any thread that does not block it, and Python runs its handler in the main thread.)
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
from contextlib import contextmanager
from typing import Any

FEW_ITEMS = 16  # below this many jobs one process does them: a pool costs more than it saves
STOPS = {signal.SIGINT, signal.SIGTERM}
POLL_S = 0.2  # how long a held signal can wait at most
IN_FLIGHT_PER_WORKER = 4  # jobs queued ahead per worker: enough to keep each one busy


@contextmanager
def _stops_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM that arrive in the block are raised when it ends, by the handlers
    that were in place (only the main thread sets handlers: elsewhere, nothing to hold)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous: dict[int, Any] = {}
    try:
        for stop in STOPS:
            previous[stop] = signal.signal(stop, lambda signum, _: arrived.append(signum))
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if arrived:
            signal.raise_signal(arrived[0])


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
    size = min(workers, len(jobs))
    with _stops_held():
        pool = ProcessPoolExecutor(size, context, _worker_init, (os.getpid(),))
    with pool:
        waiting = iter(enumerate(jobs))
        running: dict[Future[Any], int] = {}
        try:
            while True:
                with _stops_held():  # a stop waits for the end of this block, at most POLL_S
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
            with _stops_held():
                for future in running:
                    future.cancel()


def _worker_init(parent: int) -> None:
    """Workers leave Ctrl-C to prep and die with it: a kill -9 or SIGTERM of prep alone must
    not leave them running (holding the caller's pipe, `prep ... | cat`). Their parent is the
    fork server, so a thread watches prep itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

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
