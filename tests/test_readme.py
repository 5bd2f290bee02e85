"""The README's commands after its two set-up commands run as written: a shell whose PATH
knows nothing of the venv sources `.venv/bin/activate`, then runs the Quick start's next
block verbatim on the demo's folders (made here from the test fixtures, not by the demo)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # two torchrun processes train an epoch


def quick_start_blocks() -> list[str]:
    """The bash blocks of the README's Quick start, in order."""
    text = ROOT.joinpath("README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def test_quick_start_set_up_is_the_demo_then_activate() -> None:
    setup, _ = quick_start_blocks()
    commands = [line.split("#")[0].strip() for line in setup.splitlines()]
    assert commands == ["bash examples/toy_demo.sh", "source .venv/bin/activate"]


def test_the_commands_after_set_up_run_as_written(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    if sys.prefix == sys.base_prefix:
        pytest.skip("the suite is not running from a venv (bash tests/run.sh makes one)")
    venv = Path(sys.prefix)
    if not (venv / "bin" / "torchrun").exists():
        pytest.fail(f"{venv}/bin has no torchrun: examples/setup_env.sh gives the venv one")
    (tmp_path / ".venv").symlink_to(venv)
    demo = tmp_path / "toy_demo"
    shutil.copytree(tiny_feature_run, demo / "run")
    shutil.copytree(toy_data, demo / "data")
    _, after = quick_start_blocks()
    script = "set -euo pipefail\nsource .venv/bin/activate\n" + after
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step-0000002" in done.stdout  # inspect listed the run's checkpoints
    restyled = sorted((demo / "restyled").glob("*.png"))
    assert len(restyled) == 2 and Image.open(restyled[0]).size == (128, 64)
    # 8 training maps, a batch of 1 on each of the two processes: one epoch is 4 steps
    latest = demo / "run_2proc" / "checkpoints" / "LATEST"
    assert latest.read_text().strip() == "step-0000004"
