"""TensorBoard event files of a run (`--tensorboard`, the `p2phd[tensorboard]` extra), for
those who live in it: the loss terms at logging steps, the --eval-every scores and the
sample grids, under `RUN/tensorboard/`. log.jsonl and the samples page stay the record;
this is a view of the same numbers. A resumed run purges events after its step, so a
stretch trained twice after a crash shows once."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from p2phd.errors import ConfigError
from p2phd.loss_terms import LossTerms


def check_tensorboard() -> None:
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "--tensorboard: needs the tensorboard package: pip install 'p2phd[tensorboard]'"
        )


class Board:
    """One SummaryWriter for the run (rank 0)."""

    def __init__(self, root: Path, step: int) -> None:
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer: Any = SummaryWriter(str(root / "tensorboard"), purge_step=step or None)

    def losses(self, step: int, values: LossTerms[float], lr: float) -> None:
        for name, value in values._asdict().items():
            self.writer.add_scalar(f"loss/{name}", value, step)
        self.writer.add_scalar("lr", lr, step)

    def scores(self, step: int, scores: dict[str, float | None]) -> None:
        for name, value in scores.items():
            if value is not None:
                self.writer.add_scalar(f"eval/{name}", value, step)

    def image(self, step: int, grid: np.ndarray) -> None:
        self.writer.add_image("samples", grid, step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()
