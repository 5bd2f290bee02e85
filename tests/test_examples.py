"""The README's demo command works as written (shortened by TOY_EPOCHS)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_toy_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "P2PHD_VENV": str(Path(sys.executable).parents[1]), "TOY_EPOCHS": "1"}
    work = tmp_path / "demo"
    result = subprocess.run(["bash", str(ROOT / "examples" / "toy_demo.sh"), str(work)], env=env,
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"synthesized test images: {work}/synth/" in result.stdout
    assert f"training samples:        {work}/run/samples/index.html" in result.stdout
    images = sorted((work / "synth").glob("*.png"))
    assert len(images) == 6 and Image.open(images[0]).size == (128, 64)
    assert (work / "synth" / "index.html").is_file()
    assert (work / "run" / "checkpoints" / "LATEST").read_text().strip() == "step-0000096"
    again = subprocess.run(["bash", str(ROOT / "examples" / "toy_demo.sh"), str(work)], env=env,
                           capture_output=True, text=True, timeout=900)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]  # a rerun finds everything done
