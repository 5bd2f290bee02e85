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
STEPS = "--log-every 1 --batch-size 1".split()


def torchrun(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The README's form, `torchrun --no-python p2phd ...`: the installed script, which a
    folder named p2phd in the working directory cannot hide."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--standalone",
        "--no-python",
        str(Path(sys.executable).parent / "p2phd"),
        *map(str, args),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def latest(run: Path, name: str) -> dict[str, torch.Tensor]:
    folder = (run / "checkpoints" / "LATEST").read_text().strip()
    return load_file(str(run / "checkpoints" / folder / f"{name}.safetensors"))


def log(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_two_processes_match_one_with_the_same_global_batch(toy_data: Path, tmp_path: Path) -> None:
    """What must agree whatever the CPU's kernels: the step-1 losses, and the gradients after
    the all-reduce, read from Adam's first moments (after one step exp_avg = (1 - beta1) g and
    exp_avg_sq = (1 - beta2) g^2, with g the averaged gradient). The two sides sum the batch in
    different orders (one GEMM over 2 samples, or 1 per rank plus the all-reduce), so they
    differ by rounding, which scales with the net's gradients, not with each tensor's: the
    bias of a conv followed by InstanceNorm has a gradient of exactly 0 in exact arithmetic,
    rounding noise of 1e-7 here. Measured: at most 2e-5 of the net's largest gradient; allowed:
    5e-4. A rank that skipped the all-reduce would be off by the gradient itself.

    Weights are not compared: Adam's first update is lr * g / (|g| + eps), about +-lr for any
    g >> eps, so a gradient element near zero flips its step from +lr to -lr on rounding
    alone; how many such elements there are depends on the CPU (1% here, 12% elsewhere)."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        single,
        *TINY,
        "--max-steps",
        "1",
        "--log-every",
        "1",
        "--batch-size",
        "2",
    )
    assert code == 0, out
    parent = tmp_path / "clone_parent"  # a folder named p2phd here hides `python -m p2phd`
    (parent / "p2phd").mkdir(parents=True)
    result = torchrun(
        "train-global",
        toy_data,
        "--run-dir",
        ddp,
        *TINY,
        *STEPS,
        "--max-steps",
        "3",
        "--save-every",
        "1",
        "--keep-last",
        "3",
        cwd=parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Rank 0 alone wrote: one log line per step, one checkpoint per step, no temporary folders.
    assert [r["step"] for r in log(ddp)] == [1, 2, 3]
    names = sorted(p.name for p in (ddp / "checkpoints").iterdir())
    assert names == ["LATEST", "step-0000001", "step-0000002", "step-0000003"]
    a, b = log(single)[0], log(ddp)[0]
    for k in ("g_gan", "g_feat", "d_real", "d_fake"):
        assert abs(a[k] - b[k]) <= 1e-5 * abs(a[k]), k
    one = load_file(str(single / "checkpoints" / "step-0000001" / "optim.safetensors"))
    two = load_file(str(ddp / "checkpoints" / "step-0000001" / "optim.safetensors"))
    assert set(one) == set(two)
    for net in ("G", "D"):
        for slot in ("exp_avg", "exp_avg_sq"):
            keys = [k for k in one if k.startswith(f"{net}.") and k.endswith(f".{slot}")]
            scale = max(one[k].abs().max() for k in keys)
            assert len(keys) >= 16 and scale > 0, (net, slot)
            for key in keys:
                assert (one[key] - two[key]).abs().max() <= 5e-4 * scale, key


def test_restart_under_torchrun_resumes_exactly(toy_data: Path, tmp_path: Path) -> None:
    straight, restarted = tmp_path / "straight", tmp_path / "restarted"
    result = torchrun(
        "train-global",
        toy_data,
        "--run-dir",
        straight,
        *TINY,
        *STEPS,
        "--save-every",
        "1000",
        "--max-steps",
        "4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for stop in ("2", "4"):  # what torchrun --max-restarts does: the same command again
        result = torchrun(
            "train-global",
            toy_data,
            "--run-dir",
            restarted,
            *TINY,
            *STEPS,
            "--save-every",
            "1000",
            "--max-steps",
            stop,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    for name in ("G", "D", "optim"):
        a, b = latest(straight, name), latest(restarted, name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert [r["g_gan"] for r in log(straight)] == [r["g_gan"] for r in log(restarted)]
