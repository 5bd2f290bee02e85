"""train-global: checkpoints, exact resume, signals, non-finite steps, learning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from p2phd import losses
from p2phd.nets.vgg import Vgg19Features

from helpers import TINY, cli


def train(data: Path, run: Path, *extra: object) -> tuple[int, str]:
    return cli("train-global", data, "--run", run, *TINY, *extra)


def weights(run: Path, step: int | None = None) -> dict[str, dict[str, torch.Tensor]]:
    ckpts = run / "checkpoints"
    name = f"step-{step:07d}" if step else (ckpts / "LATEST").read_text().strip()
    return {n: load_file(str(ckpts / name / f"{n}.safetensors")) for n in ("G", "D", "optim")}


def assert_same(
    a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]]
) -> None:
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key}"


def log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def poison_g_loss(monkeypatch: pytest.MonkeyPatch, factor: float, steps: range) -> None:
    """Multiply G's GAN loss by `factor` (nan, inf) at the given (1-based) calls."""
    real_loss, calls = losses.gan_g_loss, [0]

    def poisoned(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        value = real_loss(*args, **kwargs)
        return value * factor if calls[0] in steps else value

    monkeypatch.setattr(losses, "gan_g_loss", poisoned)


def test_short_run_writes_a_complete_run_folder(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    opts = "--max-steps 4 --save-every 2 --log-every 1 --sample-every 2 --keep-last 1"
    code, out = train(toy_data, run, *opts.split())
    assert code == 0, out
    ckpts = run / "checkpoints"
    assert (ckpts / "LATEST").read_text().strip() == "step-0000004"
    assert sorted(p.name for p in ckpts.iterdir()) == ["LATEST", "step-0000004"]  # pruned
    files = sorted(p.name for p in (ckpts / "step-0000004").iterdir())
    expected = "D G G_ema optim".split()  # G_ema: the moving average of G's weights
    assert files == sorted([f"{n}.safetensors" for n in expected] + ["config.json", "state.json"])
    state = json.loads((ckpts / "step-0000004" / "state.json").read_text())
    assert state["step"] == 4 and state["stage"] == "global" and state["lr"] == 2e-4
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["net"]["label_nc"] == 8  # taken from the prepped dataset
    assert record["history"][0]["event"] == "start"
    lines = log(run)
    assert [r["step"] for r in lines] == [1, 2, 3, 4]
    assert all({"g_gan", "g_feat", "g_vgg", "d_real", "d_fake", "lr"} <= r.keys() for r in lines)
    assert all(r["g_vgg"] == 0 for r in lines)  # --no-vgg-loss
    samples = sorted(p.name for p in (run / "samples").glob("*.png"))
    assert samples == ["step-0000002.png", "step-0000004.png"]
    html = (run / "samples" / "index.html").read_text()
    assert html.index("step-0000004.png") < html.index("step-0000002.png")  # newest first
    assert Image.open(run / "samples" / "step-0000004.png").size == (128 * 3 + 8, 64)


def test_resume_is_bitwise_equal_to_a_straight_run(toy_data: Path, tmp_path: Path) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = "--log-every 1 --batch-size 2 --epochs 1 --decay-epochs 2".split()
    assert train(toy_data, straight, "--max-steps", "9", *common)[0] == 0
    assert train(toy_data, split, "--max-steps", "3", *common)[0] == 0  # mid-epoch (4 per epoch)
    code, out = train(toy_data, split, "--max-steps", "9", *common)
    assert code == 0, out
    assert_same(weights(straight), weights(split))
    assert [r["g_gan"] for r in log(straight)] == [r["g_gan"] for r in log(split)]
    # epoch 0 and the first decay epoch run at the full lr, epoch 2 at half (the reference's)
    assert [r["lr"] for r in log(straight)] == pytest.approx([2e-4] * 8 + [1e-4])
    history = json.loads((split / "config.json").read_text())["history"]
    assert [h["event"] for h in history] == ["start", "resume"] and history[1]["step"] == 3


def test_resume_refuses_other_architecture(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(toy_data, run, "--max-steps", "1")[0] == 0
    code, out = train(toy_data, run, "--max-steps", "2", "--ngf", "4")
    assert code == 2 and "net.ngf: 8 != 4" in out and "Traceback" not in out


def test_vgg_loss_without_weights_says_what_to_do(toy_data: Path, tmp_path: Path) -> None:
    code, out = cli("train-global", toy_data, "--run", tmp_path / "r", "--quiet", "--device", "cpu")
    assert code == 2 and "--vgg-weights" in out and "--no-vgg-loss" in out
    assert not (tmp_path / "r").exists()


def test_vgg_loss_with_a_weights_file(toy_data: Path, tmp_path: Path) -> None:
    vgg = Vgg19Features()
    state = {k: torch.randn_like(v) * 0.05 for k, v in vgg.features.state_dict().items()}
    save_file(state, str(tmp_path / "vgg.safetensors"))
    tiny_with_vgg = [a for a in TINY if a != "--no-vgg-loss"]
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        tmp_path / "run",
        *tiny_with_vgg,
        "--max-steps",
        "2",
        "--log-every",
        "1",
        "--vgg-weights",
        tmp_path / "vgg.safetensors",
    )
    assert code == 0, out
    assert all(r["g_vgg"] > 0 for r in log(tmp_path / "run"))


def test_nonfinite_step_is_skipped(
    toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison_g_loss(monkeypatch, float("nan"), range(3, 4))
    run, opts = tmp_path / "run", "--save-every 1 --keep-last 9 --log-every 1".split()
    code, out = train(toy_data, run, "--max-steps", "3", *opts)
    assert code == 0, out
    assert_same(weights(run, 2), weights(run, 3))  # step 3 was skipped; the end still saves
    assert train(toy_data, run, "--max-steps", "4", *opts)[0] == 0
    assert not torch.equal(
        weights(run, 3)["G"]["head.1.weight"], weights(run, 4)["G"]["head.1.weight"]
    )
    assert [r["nonfinite_skipped"] for r in log(run)] == [0, 0, 1, 1]
    assert [r["finite"] for r in log(run)] == [True, True, False, True]


def test_many_nonfinite_steps_stop_the_run(
    toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison_g_loss(monkeypatch, float("inf"), range(3, 1000))
    run = tmp_path / "run"
    code, out = train(toy_data, run, *"--max-steps 20 --save-every 2 --max-nonfinite 3".split())
    assert code == 2 and "3 steps in a row had non-finite losses" in out
    assert (run / "checkpoints" / "LATEST").read_text().strip() == "step-0000002"
    for tensors in weights(run).values():
        assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


@pytest.mark.slow
def test_sigterm_saves_and_rerun_resumes_exactly(toy_data: Path, tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    args = ["--max-steps", "40", "--log-every", "1", "--save-every", "1000"]
    assert train(toy_data, straight, *args)[0] == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "p2phd",
        "train-global",
        str(toy_data),
        "--run",
        str(killed),
        *TINY,
        *args,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until training is under way
        if (killed / "log.jsonl").is_file() and len(log(killed)) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, output
    stopped = int((killed / "checkpoints" / "LATEST").read_text().strip().split("-")[1])
    assert 3 <= stopped < 40 and "rerun the same command to resume" in output
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert_same(weights(straight), weights(killed))
    assert [r["g_gan"] for r in log(straight)] == [r["g_gan"] for r in log(killed)]


def test_keep_every_keeps_milestones_beside_the_last(toy_data: Path, tmp_path: Path) -> None:
    """8 items at batch 4: 2 steps an epoch. --keep-every 2 keeps epoch 2's last checkpoint
    (step 4) past --keep-last 1; without it only the last survives."""
    opts = "--max-steps 6 --batch-size 4 --save-every 1 --keep-last 1".split()
    for keep_every, expected in (("0", ["step-0000006"]), ("2", ["step-0000004", "step-0000006"])):
        run = tmp_path / f"run{keep_every}"
        code, out = train(toy_data, run, *opts, "--keep-every", keep_every)
        assert code == 0, out
        kept = sorted(p.name for p in (run / "checkpoints").glob("step-*"))
        assert kept == expected
    report = json.loads(cli("inspect", tmp_path / "run2", "--json")[1])
    marks = [(c["step"], c["epoch"], c["milestone"], c["latest"]) for c in report["checkpoints"]]
    assert marks == [(4, 2, True, False), (6, 3, False, True)]
    assert cli("synthesize", tmp_path / "run2", toy_data / "test" / "label", "--inst",
               toy_data / "test" / "inst", "--out", tmp_path / "o", "--checkpoint", "epoch:2",
               "--device", "cpu", "--quiet")[0] == 0  # fmt: skip
