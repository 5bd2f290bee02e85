"""Multi-process training under torchrun: process group, ranks, and the few collectives.

The same command runs alone or under `torchrun --nproc-per-node N -m p2phd ...`: with
WORLD_SIZE > 1 in the environment a process group is set up (NCCL on CUDA, gloo on the CPU),
each process takes its own GPU (LOCAL_RANK) and its slice of every global batch; rank 0
alone writes checkpoints, samples and logs.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from p2phd.runtime import resolve_device


@dataclass(frozen=True, slots=True)
class Dist:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def max_(self, flags: torch.Tensor) -> None:
        """Element-wise max of a device tensor across ranks, in place, without the host
        waiting for it."""
        if self.enabled:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over ranks of some logged numbers."""
        if not self.enabled:
            return values
        t = torch.tensor(list(values.values()), device=self.device, dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world_size).tolist(), strict=True))


def setup(device: str) -> Dist:
    """Join the torchrun job if there is one, and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist(device=resolve_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if resolved.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=30),
        )
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size(), device=resolved)


def teardown(ctx: Dist) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
