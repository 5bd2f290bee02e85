"""I/O that overlaps the device: readers decode ahead of the forward pass, writers encode
behind it, each a pool of threads with a bounded queue (back-pressure: the readers stop
when `ahead` inputs wait, the forward pass waits when `behind` outputs are unwritten).

Threads suffice: Pillow and numpy release the GIL while they decode, resize and encode. With
0 workers everything runs in the calling thread, in order (the serial loop).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int, ahead: int
                ) -> Iterator[R]:  # fmt: skip
    """`fn` over `items` by `workers` threads, results in order, at most `ahead` in flight."""
    if workers == 0:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="p2phd-read") as pool:
        queue: deque[Future[R]] = deque()
        pending = iter(items)
        try:
            for item in pending:
                queue.append(pool.submit(fn, item))
                if len(queue) >= ahead:
                    yield queue.popleft().result()
            while queue:
                yield queue.popleft().result()
        finally:
            for future in queue:
                future.cancel()


class Writers:
    """A pool that runs write jobs behind the caller; `submit` waits when `behind` jobs are
    unfinished, and the first error of any job is raised there or at `close`."""

    def __init__(self, workers: int, behind: int) -> None:
        self.pool = ThreadPoolExecutor(workers, "p2phd-write") if workers else None
        self.behind = max(behind, 1)
        self.pending: deque[Future[Any]] = deque()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.pool is None:
            fn(*args)
            return
        self.pending.append(self.pool.submit(fn, *args))
        while len(self.pending) >= self.behind:
            self.pending.popleft().result()

    def close(self) -> None:
        """Wait for every write; raise the first error."""
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Writers:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.close()
        elif self.pool is not None:  # already failing: stop, wait, keep the first error
            self.pool.shutdown(wait=True, cancel_futures=True)
