"""Helpers shared by the tests: tiny training options and an in-process CLI runner."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from p2phd.cli import app

# Tiny nets: 2 downsamplings, 1 block, width 8; two 2-layer D scales; no VGG; CPU.
TINY = [
    "--ngf",
    "8",
    "--n-downsample-global",
    "2",
    "--n-blocks-global",
    "1",
    "--ndf",
    "8",
    "--n-layers-d",
    "2",
    "--num-d",
    "2",
    "--no-vgg-loss",
    "--num-workers",
    "0",
    "--device",
    "cpu",
    "--quiet",
]


def cli(*args: object) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stdout + stderr)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def run_recipe(script: str, work: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `examples/<script>` in `work` as a user would, its training shortened: the
    recipe's `P2PHD` hook runs train-global with TINY nets for one step (its options last,
    so they win). `env` names the dataset folder (and VGG; no VGG loss is computed)."""
    bindir = Path(sys.executable).parent  # the venv's p2phd
    hook = work / "tiny_p2phd.sh"
    tiny = " ".join(shlex.quote(a) for a in [*TINY, "--max-steps", "1"])
    hook.write_text(f'#!/bin/bash\nexec {shlex.quote(str(bindir / "p2phd"))} "$@" {tiny}\n')
    hook.chmod(0o755)
    (work / "vgg.pth").touch()
    env = {"VGG": "vgg.pth", "P2PHD": str(hook), **env}
    return subprocess.run(
        ["bash", str(Path(__file__).resolve().parents[1] / "examples" / script)],
        cwd=work,
        env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def random_batch(
    label_nc: int = 4, height: int = 16, width: int = 32, n: int = 2, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A loader-like batch of random label, instance and photo maps."""
    g = torch.Generator().manual_seed(seed)
    return {
        "label": torch.randint(0, label_nc, (n, height, width), generator=g, dtype=torch.int32),
        "inst": torch.randint(0, 3, (n, height, width), generator=g, dtype=torch.int32),
        "image": torch.randint(0, 256, (n, 3, height, width), generator=g, dtype=torch.uint8),
    }


# The options of a tiny reference-layout checkpoint (a 512p-style G with features, D, E).
TINY_REFERENCE = [
    "--label-nc",
    "8",
    "--ngf",
    "8",
    "--n-downsample-global",
    "2",
    "--n-blocks-global",
    "1",
    "--ndf",
    "8",
    "--n-layers-d",
    "2",
    "--instance-feat",
    "--no-vgg-loss",
]


def write_reference_checkpoint(folder: Path) -> Path:
    """NVIDIA/pix2pixHD's checkpoint folder for TINY_REFERENCE: latest_net_{G,D,E}.pth in
    the reference's key layout, and a cluster file with 2 centres for class 6."""
    from p2phd.config import LossConfig, NetConfig, TrainConfig
    from p2phd.interop import reference_name
    from p2phd.training.distributed import Dist
    from p2phd.training.gan import Pix2PixHD

    net = NetConfig(
        label_nc=8,
        ngf=8,
        n_downsample_global=2,
        n_blocks_global=1,
        ndf=8,
        n_layers_d=2,
        instance_feat=True,
    )
    model = Pix2PixHD(TrainConfig(net=net, loss=LossConfig(vgg_loss=False)), "fp32", Dist())
    folder.mkdir(parents=True, exist_ok=True)
    for role, module in (("G", model.G), ("D", model.D), ("E", model.E)):
        assert module is not None
        state = {reference_name(k, role, net, True): v for k, v in module.state_dict().items()}
        torch.save(state, folder / f"latest_net_{role}.pth")
    np.save(
        folder / "features_clustered_010.npy", {6: np.zeros((2, 3), np.float32)}, allow_pickle=True
    )
    return folder


def model_inputs(model, batch):  # type: ignore[no-untyped-def]
    """A batch as `model`'s step takes it, as the trainer makes it."""
    return model.step_inputs(batch)


def one_line(code: int, out: str, *expected: str) -> None:
    """A refusal: exit status 2, one line, no traceback, each `expected` text in it."""
    assert code == 2, out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    for text in expected:
        assert text in " ".join(out.split()), out


def synth(run: Path, data: Path, out: Path, *args: object) -> tuple[int, str]:
    """`synthesize` of a prepped dataset's test split on the CPU, quietly."""
    test = data / "test"
    return cli(
        "synthesize", run, test / "label", "--inst", test / "inst", "--out", out,
        "--device", "cpu", "--quiet", *args,
    )  # fmt: skip


def newest(run: Path) -> Path:
    """The checkpoint folder LATEST names."""
    return run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text().strip()


def marked_processes(mark: str) -> dict[int, tuple[str, str]]:
    """Processes other than this one whose environment, as they were exec'd with it, holds
    `mark` ("NAME=value"): pid -> (state, command line). A forked child that was not exec'd
    shows its parent's environment as it was at the parent's start, so it is found only
    where that held the mark."""
    found = {}
    needle = mark.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        found[int(entry.name)] = (state, command.strip())
    return found
