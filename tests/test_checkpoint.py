"""Checkpoints: save -> load is exact, writes are atomic, damage is reported, keys are pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from p2phd.checkpoint import (
    RunDir,
    config_record,
    latest_checkpoint,
    load_strict,
    save_checkpoint,
)
from p2phd.config import LossConfig, NetConfig, RunOptions, TrainConfig
from p2phd.errors import CheckpointError, WriteError
from p2phd.training.distributed import Dist
from p2phd.training.gan import Pix2PixHD
from p2phd.training.state import restore, training_tensors

from helpers import model_inputs, random_batch

CFG = TrainConfig(
    net=NetConfig(label_nc=4, ngf=4, n_downsample_global=2, n_blocks_global=1, ndf=4, n_layers_d=2),
    loss=LossConfig(vgg_loss=False),
    run=RunOptions(device="cpu"),
)


def save(model: Pix2PixHD, run: RunDir, step: int, keep_last: int = 3) -> Path:
    tensors, groups = training_tensors(model)
    return save_checkpoint(
        run,
        step,
        tensors,
        {"optim": groups, "stage": "global"},
        config_record(CFG, []),
        keep_last=keep_last,
    )


def test_save_then_load_gives_identical_outputs_and_next_step(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    a = Pix2PixHD(CFG, "fp32", Dist(device=torch.device("cpu")))
    a.step(*model_inputs(a, random_batch(seed=0)))
    save(a, run, 1)
    b = Pix2PixHD(CFG, "fp32", Dist(device=torch.device("cpu")))
    with torch.no_grad():  # make b differ first, so the load must do the work
        for p in b.G.parameters():
            p.add_(1.0)
    restore(b, latest_checkpoint(run))  # type: ignore[arg-type]
    x, real, _ = model_inputs(a, random_batch(seed=1))
    assert torch.equal(a.G(x), b.G(x))
    assert all(
        torch.equal(u, v)
        for su, sv in zip(a.D(torch.cat([x, real], 1)), b.D(torch.cat([x, real], 1)), strict=True)
        for u, v in zip(su, sv, strict=True)
    )
    a.step(x, real)
    b.step(x, real)  # Adam moments were restored too: the next step is identical
    for (name, p), q in zip(a.G.named_parameters(), b.G.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_checkpoint_keys_are_a_stable_public_format() -> None:
    model = Pix2PixHD(CFG, "fp32", Dist(device=torch.device("cpu")))
    g_keys = list(model.G.state_dict())
    assert g_keys[:2] == ["trunk.1.weight", "trunk.1.bias"]
    assert "trunk.10.conv_block.1.weight" in g_keys and "trunk.10.conv_block.5.bias" in g_keys
    assert g_keys[-2:] == ["head.1.weight", "head.1.bias"]
    d_keys = list(model.D.state_dict())
    assert d_keys[0] == "scales.0.layers.0.0.weight" and d_keys[-1] == "scales.1.layers.3.0.bias"


def test_rotation_keeps_the_last_and_latest_names_the_newest(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    model = Pix2PixHD(CFG, "fp32", Dist(device=torch.device("cpu")))
    for step in (2, 4, 6, 8):
        save(model, run, step, keep_last=2)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == [
        "LATEST",
        "step-0000006",
        "step-0000008",
    ]
    assert latest_checkpoint(run).step == 8  # type: ignore[union-attr]
    state = json.loads((run.step_dir(8) / "state.json").read_text())
    assert state["files"]["G.safetensors"] == (run.step_dir(8) / "G.safetensors").stat().st_size


def test_a_crash_mid_save_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = RunDir(tmp_path)
    model = Pix2PixHD(CFG, "fp32", Dist(device=torch.device("cpu")))
    save(model, run, 2)
    import safetensors.torch as writer  # what p2phd.atomic.save_tensors writes with

    real_save = writer.save_file
    calls = {"n": 0}

    def failing(tensors, path, metadata=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # G written, then the disk fills up while writing D
            raise OSError(28, "No space left on device")
        return real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(writer, "save_file", failing)
    with pytest.raises(
        WriteError, match=r"D\.safetensors: cannot write \(No space left on device\)"
    ):
        save(model, run, 4)
    assert latest_checkpoint(run).step == 2  # type: ignore[union-attr]
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["LATEST", "step-0000002"]


def test_damaged_files_are_reported_not_loaded(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    model = Pix2PixHD(CFG, "fp32", Dist(device=torch.device("cpu")))
    save(model, run, 2)
    g = run.step_dir(2) / "G.safetensors"
    g.write_bytes(g.read_bytes()[: g.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="G.safetensors.*damaged"):
        latest_checkpoint(run).tensors("G")  # type: ignore[union-attr]


def test_strict_load_lists_the_mismatches() -> None:
    model = Pix2PixHD(CFG, "fp32", Dist(device=torch.device("cpu")))
    state = dict(model.G.state_dict())
    del state["head.1.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["trunk.1.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(CheckpointError) as info:
        load_strict(model.G, state, "G.safetensors")
    message = str(info.value)
    assert "missing (1): head.1.bias" in message and "unexpected (1): extra.weight" in message
    assert (
        "shape (1): trunk.1.weight (1, 1, 1, 1) != (4, 5, 7, 7)" in message
    )  # 4 classes + boundary


def test_nonfinite_weights_are_never_saved(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    model = Pix2PixHD(CFG, "fp32", Dist(device=torch.device("cpu")))
    with torch.no_grad():
        model.G.head[1].bias[0] = float("nan")
    with pytest.raises(CheckpointError, match="G.head.1.bias is not finite"):
        save(model, run, 2)
    assert latest_checkpoint(run) is None and not list(run.root.rglob(".*tmp*"))
