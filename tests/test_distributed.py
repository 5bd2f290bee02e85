"""torchrun: 2 CPU processes (gloo) train as one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import TINY, cli

pytestmark = pytest.mark.slow
STEPS = "--log-every 1 --batch-size 1 --save-every 1000".split()


def torchrun(*args: object) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--standalone", "-m", "p2phd", *map(str, args)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def latest(run: Path, name: str) -> dict[str, torch.Tensor]:
    folder = (run / "checkpoints" / "LATEST").read_text().strip()
    return load_file(str(run / "checkpoints" / folder / f"{name}.safetensors"))


def log(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_two_processes_match_one_with_the_same_global_batch(toy_data: Path,
                                                            tmp_path: Path) -> None:  # fmt: skip
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    code, out = cli("train-global", toy_data, "--run", single, *TINY, "--max-steps", "3",
                    "--log-every", "1", "--batch-size", "2")  # fmt: skip
    assert code == 0, out
    result = torchrun("train-global", toy_data, "--run-dir", ddp, *TINY, *STEPS, "--max-steps", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    # Rank 0 alone wrote: one log line per step, one checkpoint, no temporary folders.
    assert [r["step"] for r in log(ddp)] == [1, 2, 3]
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == ["LATEST", "step-0000003"]
    # Tolerance: the losses agree to 1e-5 (relative) at every step; the weights agree to 1e-6
    # except for at most 1% of them, where a gradient is so close to zero that rounding in
    # the all-reduce flips the sign of Adam's (about +-lr) update.
    for a, b in zip(log(single), log(ddp), strict=True):
        for k in ("g_gan", "g_feat", "d_real", "d_fake"):
            assert abs(a[k] - b[k]) <= 1e-5 * abs(a[k]), (a["step"], k)
    for name in ("G", "D"):
        one, two = latest(single, name), latest(ddp, name)
        diff = torch.cat([(one[k] - two[k]).abs().flatten() for k in one])
        assert (diff > 1e-6).float().mean() < 0.01, name
        assert diff.max() < 4 * 3 * 2e-4, name


def test_restart_under_torchrun_resumes_exactly(toy_data: Path, tmp_path: Path) -> None:
    straight, restarted = tmp_path / "straight", tmp_path / "restarted"
    result = torchrun("train-global", toy_data, "--run-dir", straight, *TINY, *STEPS,
                      "--max-steps", "4")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for stop in ("2", "4"):  # what torchrun --max-restarts does: the same command again
        result = torchrun("train-global", toy_data, "--run-dir", restarted, *TINY, *STEPS,
                          "--max-steps", stop)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    for name in ("G", "D", "optim"):
        a, b = latest(straight, name), latest(restarted, name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert [r["g_gan"] for r in log(straight)] == [r["g_gan"] for r in log(restarted)]
