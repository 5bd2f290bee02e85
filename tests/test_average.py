"""The moving average of G's (and E's) weights (issue 21): its rule, its place in
checkpoints, exact resume, and every command rendering with it by default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from p2phd.training.average import WeightAverage

from helpers import TINY, cli

AVERAGING = ["--ema-beta", "0.5", "--ema-start", "1"]  # averages from step 2 on, visibly


def train(data: Path, run: Path, *extra: object) -> tuple[int, str]:
    return cli("train-global", data, "--run", run, *TINY, *extra)


def checkpoint_file(run: Path, name: str) -> dict[str, torch.Tensor]:
    latest = (run / "checkpoints" / "LATEST").read_text().strip()
    return load_file(str(run / "checkpoints" / latest / f"{name}.safetensors"))


def test_the_average_copies_then_averages_trainable_weights_only() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    net[0].bias.requires_grad_(False)  # a frozen parameter stays as it is
    average = WeightAverage(net, beta=0.75, start=1)
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(5.0)
        net[1].running_mean.fill_(3.0)
    average.update(1)  # step 1 <= start: a copy
    assert torch.equal(average.average[0].weight, net[0].weight)
    frozen = average.average[0].bias.clone()
    with torch.no_grad():
        net[0].weight.fill_(3.0)
    average.update(2)  # 0.75 * 1 + 0.25 * 3
    assert torch.allclose(average.average[0].weight, torch.full((2, 2), 1.5))
    assert torch.equal(average.average[0].bias, frozen)  # never touched
    assert torch.equal(average.average[1].running_mean, torch.full((2,), 3.0))  # copied
    assert not any(p.requires_grad for p in average.average.parameters())


def test_checkpoints_hold_both_weight_sets_and_resume_bitwise(
    toy_data: Path, tmp_path: Path
) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--batch-size", "2", "--epochs", "1", "--decay-epochs", "2", *AVERAGING]
    assert train(toy_data, straight, "--max-steps", "7", *common)[0] == 0
    assert train(toy_data, split, "--max-steps", "3", *common)[0] == 0
    code, out = train(toy_data, split, "--max-steps", "7", *common)
    assert code == 0, out
    for name in ("G", "G_ema", "D"):
        a, b = checkpoint_file(straight, name), checkpoint_file(split, name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    raw, average = checkpoint_file(straight, "G"), checkpoint_file(straight, "G_ema")
    assert any(not torch.equal(raw[k], average[k]) for k in raw)  # it does average


def test_no_average_with_beta_zero(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(toy_data, run, "--max-steps", "1", "--ema-beta", "0")[0] == 0
    latest = (run / "checkpoints" / "LATEST").read_text().strip()
    assert not (run / "checkpoints" / latest / "G_ema.safetensors").exists()
    test = toy_data / "test"
    code, out = cli("synthesize", run, test / "label", "--inst", test / "inst",
                    "--out", tmp_path / "o", "--weights", "ema")  # fmt: skip
    assert code == 2 and "no moving average of G" in out and "--weights raw" in out, out
    code, out = cli("inspect", run)
    assert "weights: raw only" in out, out


@pytest.fixture(scope="module")
def averaged_run(toy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("averaged") / "run"
    code, out = train(toy_data, run, "--max-steps", "3", "--instance-feat", *AVERAGING)
    assert code == 0, out
    for command in (["encode-features", run, toy_data], ["cluster", run, "--k", "2"]):
        code, out = cli(*command, "--quiet")  # the averaged E encodes the style bank
        assert code == 0, out
    return run


def synthesize(run: Path, data: Path, out: Path, *extra: str) -> np.ndarray:
    test = data / "test"
    code, text = cli("synthesize", run, test / "label", "--inst", test / "inst", "--out", out,
                     "--device", "cpu", "--quiet", *extra)  # fmt: skip
    assert code == 0, text
    return np.asarray(Image.open(sorted(out.glob("*.png"))[0]))


def test_commands_render_with_the_average_by_default(
    averaged_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    default = synthesize(averaged_run, toy_data, tmp_path / "default")
    ema = synthesize(averaged_run, toy_data, tmp_path / "ema", "--weights", "ema")
    raw = synthesize(averaged_run, toy_data, tmp_path / "raw", "--weights", "raw")
    assert np.array_equal(default, ema) and not np.array_equal(default, raw)
    code, out = cli("inspect", averaged_run)
    assert "weights: raw + moving average (beta 0.5 after step 1), renders with: ema" in out
    report = json.loads(cli("inspect", averaged_run, "--json")[1])
    assert report["weights"]["ema"] is True and report["weights"]["used"] == "ema"


def test_export_of_an_averaged_run_matches_synthesize(
    averaged_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    ort = pytest.importorskip("onnxruntime")
    from p2phd.synth.run import Run

    code, out = cli("export", averaged_run, "--out", tmp_path / "g.onnx", "--raw-input")
    assert code == 0, out
    run = Run.open(averaged_run)
    assert run.weights == "ema"
    x = torch.randn(1, run.net.generator_in_channels, 64, 128)
    with torch.inference_mode():
        expected = run.generator(torch.device("cpu"))(x).numpy()
        raw = Run.open(averaged_run, weights="raw").generator(torch.device("cpu"))(x).numpy()
    session = ort.InferenceSession(str(tmp_path / "g.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-4 < np.abs(got - raw).max()


def test_the_local_stage_averages_the_whole_generator(toy_data: Path, tmp_path: Path) -> None:
    glob = tmp_path / "global"
    assert train(toy_data, glob, "--max-steps", "1", "--ngf", "16")[0] == 0
    local = tmp_path / "local"
    code, out = cli("train-local", toy_data, "--run", local, "--global", glob, *TINY[2:],
                    "--ngf", "8", "--max-steps", "3", "--load-width", "256",
                    *AVERAGING)  # fmt: skip
    assert code == 0, out
    raw, average = checkpoint_file(local, "G"), checkpoint_file(local, "G_ema")
    frozen = [k for k in raw if k.startswith("global_generator.")]
    assert frozen and all(torch.equal(raw[k], average[k]) for k in frozen)  # G1 is fixed
    enhancer = [k for k in raw if not k.startswith("global_generator.")]
    assert any(not torch.equal(raw[k], average[k]) for k in enhancer)


@pytest.mark.slow
def test_the_average_beats_the_raw_weights_over_three_seeds(tmp_path: Path) -> None:
    """TINY nets on 16 toy scenes, 320 steps (the last half decaying), seeds 0, 1, 2: each
    run scored on the test scenes with both weight sets. The average's PSNR is higher by a
    margin in the mean (measured: +0.24, +0.27, +0.60 dB). The issue's mIoU margin is
    not asserted: at this size the two are within noise of each other (benchmarks/RESULTS.md)."""
    from p2phd.data.toy import write_toy_dataset

    src, data = tmp_path / "src", tmp_path / "data"
    write_toy_dataset(src, n_train=16, n_test=4, height=64, width=128, seed=0)
    assert cli("prep", src, data, "--quiet")[0] == 0
    gains = []
    for seed in (0, 1, 2):
        run = tmp_path / f"run{seed}"
        code, out = cli(
            "train-global", data, "--run", run, *TINY, "--seed", seed, "--epochs", "10",
            "--decay-epochs", "10", "--ema-beta", "0.99", "--ema-start", "50",
            "--sample-every", "100000",
        )  # fmt: skip
        assert code == 0, out
        psnr = {}
        for weights in ("ema", "raw"):
            code, out = cli(
                "evaluate", run, data, "--weights", weights, "--out", run / f"eval-{weights}",
                "--device", "cpu", "--quiet", "--json",
            )  # fmt: skip
            assert code == 0, out
            psnr[weights] = json.loads(out)["psnr"]
        gains.append(psnr["ema"] - psnr["raw"])
    assert np.mean(gains) > 0.1, gains
