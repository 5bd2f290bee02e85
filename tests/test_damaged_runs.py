"""A damaged run is refused where it is read, never used without a word (issue 23, point 4):
weights holding NaN, a step folder or weights file linking into another run, a LATEST that is
a folder, features holding NaN. Each is one line naming the file and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from helpers import TINY, cli, newest, one_line, synth

TEST = ["--device", "cpu", "--quiet"]


@pytest.fixture
def run(tiny_feature_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(tiny_feature_run, tmp_path / "run")
    return tmp_path / "run"


def poison(path: Path) -> str:
    """One weight of the file set to NaN, the file's size unchanged; the tensor's name."""
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    name = sorted(k for k, v in tensors.items() if v.is_floating_point() and v.numel())[0]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(path), metadata=metadata)
    return name


@pytest.mark.parametrize(
    ("file", "reader"),
    [
        ("G", ["synthesize", "--weights", "raw"]),
        ("G_ema", ["synthesize"]),
        ("E", ["encode-features", "--weights", "raw"]),
    ],
)
def test_weights_holding_nan_are_refused(
    run: Path, toy_data: Path, tmp_path: Path, file: str, reader: list[str]
) -> None:
    path = newest(run) / f"{file}.safetensors"
    name = poison(path)
    command, *options = reader
    read = (
        synth(run, toy_data, tmp_path / "o", *options)
        if command == "synthesize"
        else cli(command, run, toy_data, *TEST, *options)
    )
    one_line(
        *read,
        f"{path}: {name} holds NaN or inf",
        "delete this checkpoint folder to fall back to the previous one",
    )
    assert not list(tmp_path.glob("o/**/*.*"))  # no image, no page
    one_line(  # resuming from it is refused the same way
        *cli("train-global", toy_data, "--run", run, *TINY, "--instance-feat", "--max-steps", "3"),
        f"{name} holds NaN or inf",
    )


def test_a_step_folder_linking_into_another_run_is_refused(
    run: Path, tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    step = newest(run)
    shutil.rmtree(step)
    step.symlink_to(newest(tiny_feature_run))
    one_line(*synth(run, toy_data, tmp_path / "o"), f"{step}: links to", "copy the checkpoint in")


def test_a_weights_file_linking_elsewhere_is_refused(
    run: Path, tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    weights = newest(run) / "G_ema.safetensors"
    weights.unlink()
    weights.symlink_to(newest(tiny_feature_run) / "G_ema.safetensors")
    one_line(
        *synth(run, toy_data, tmp_path / "o"), f"{weights}: links to", "outside its checkpoint"
    )


def test_a_latest_that_is_a_folder_is_refused(run: Path, toy_data: Path, tmp_path: Path) -> None:
    latest = run / "checkpoints" / "LATEST"
    latest.unlink()
    latest.mkdir()
    one_line(*synth(run, toy_data, tmp_path / "o"), f"{latest}: is a folder, not the file")


@pytest.mark.parametrize("which", ["features", "clusters"])
def test_bank_files_holding_nan_are_refused(
    run: Path, toy_data: Path, tmp_path: Path, which: str
) -> None:
    path = run / f"{which}.safetensors"
    name = poison(path)
    expected = f"{path}: {name} holds NaN or inf; write it again"
    if which == "features":
        one_line(*cli("cluster", run, "--k", "2", "--quiet"), expected)
    else:
        one_line(*synth(run, toy_data, tmp_path / "o"), expected)


def test_a_bank_tensor_of_the_wrong_shape_is_refused(run: Path) -> None:
    path = run / "features.safetensors"
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name] = torch.zeros(3)
    save_file(tensors, str(path))
    one_line(
        *cli("cluster", run, "--k", "2", "--quiet"),
        f"{name} is a torch.float32 tensor of shape (3,)",
    )
