"""Helpers shared by the tests: tiny training options and an in-process CLI runner."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from p2phd.cli import app

# Tiny nets: 2 downsamplings, 1 block, width 8; two 2-layer D scales; no VGG; CPU.
TINY = [
    "--ngf", "8", "--n-downsample-global", "2", "--n-blocks-global", "1",
    "--ndf", "8", "--n-layers-d", "2", "--num-d", "2", "--no-vgg-loss",
    "--num-workers", "0", "--device", "cpu", "--quiet",
]  # fmt: skip


def cli(*args: object) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stdout + stderr)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def random_batch(label_nc: int = 4, height: int = 16, width: int = 32, n: int = 2,
                 seed: int = 0) -> dict[str, torch.Tensor]:  # fmt: skip
    """A loader-like batch of random label, instance and photo maps."""
    g = torch.Generator().manual_seed(seed)
    return {
        "label": torch.randint(0, label_nc, (n, height, width), generator=g, dtype=torch.int32),
        "inst": torch.randint(0, 3, (n, height, width), generator=g, dtype=torch.int32),
        "image": torch.randint(0, 256, (n, 3, height, width), generator=g, dtype=torch.uint8),
    }
