"""--input-nc and --output-nc: grey inputs (with --label-nc 0) and grey outputs, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2phd.data.io import to_channels

from helpers import TINY, cli

TEST = ["--device", "cpu", "--quiet"]


def test_grey_is_the_luma() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]]], np.uint8)
    grey = to_channels(rgb, 1)
    assert grey.shape == (1, 4, 1)
    assert grey[0, :, 0].tolist() == [
        np.asarray(Image.fromarray(rgb).convert("L"))[0, i] for i in range(4)
    ]  # Pillow's own conversion
    assert to_channels(rgb, 3) is rgb


def test_grey_outputs(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        run,
        *TINY,
        "--output-nc",
        "1",
        "--max-steps",
        "2",
        "--sample-every",
        "2",
    )
    assert code == 0, out
    assert json.loads((run / "config.json").read_text())["config"]["net"]["output_nc"] == 1
    assert Image.open(run / "samples" / "step-0000002.png").size == (128 * 3 + 8, 64)
    test = toy_data / "test"
    code, out = cli(
        "synthesize", run, test / "label", "--inst", test / "inst", "--out", tmp_path / "o", *TEST
    )
    assert code == 0, out
    image = Image.open(tmp_path / "o" / "toy_test_00000.png")
    assert image.mode == "L" and image.size == (128, 64)


@pytest.fixture()
def rgb_pairs(toy_source: Path, tmp_path: Path) -> Path:
    """An RGB-input dataset (train_A/ -> train_B/): the toy's photos, mirrored, as targets."""
    src = tmp_path / "src"
    for split in ("train", "test"):
        for photo in sorted((toy_source / f"{split}_img").glob("*.png")):
            for folder, image in (
                ("A", Image.open(photo)),
                ("B", Image.open(photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
            ):
                (src / f"{split}_{folder}").mkdir(parents=True, exist_ok=True)
                image.save(src / f"{split}_{folder}" / photo.name)
    code, out = cli(
        "prep", src, tmp_path / "data", "--label-nc", "0", "--multiple", "16", "--quiet"
    )
    assert code == 0, out
    return tmp_path / "data"


def test_grey_inputs(rgb_pairs: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out = cli(
        "train-global",
        rgb_pairs,
        "--run",
        run,
        *TINY,
        "--label-nc",
        "0",
        "--input-nc",
        "1",
        "--no-instance",
        "--max-steps",
        "2",
    )
    assert code == 0, out
    net = json.loads((run / "config.json").read_text())["config"]["net"]
    assert net["input_nc"] == 1 and net["label_nc"] == 0
    g = json.loads((run / "checkpoints" / "step-0000002" / "state.json").read_text())
    assert g["step"] == 2
    code, out = cli("synthesize", run, rgb_pairs / "test" / "input", "--out", tmp_path / "o", *TEST)
    assert code == 0, out
    assert Image.open(tmp_path / "o" / "toy_test_00000.png").mode == "RGB"
    code, out = cli(
        "train-global",
        rgb_pairs,
        "--run",
        tmp_path / "x",
        *TINY,
        "--label-nc",
        "0",
        "--input-nc",
        "2",
        "--no-instance",
    )
    assert code == 2 and "--input-nc: is 1 or 3" in out
