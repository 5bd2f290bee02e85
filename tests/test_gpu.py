"""CUDA checks (run by benchmarks/gpu_checks.sh on a GPU machine; skipped elsewhere)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from p2phd.config import LossConfig, NetConfig, RunOptions, TrainConfig
from p2phd.training.distributed import Dist
from p2phd.training.gan import Pix2PixHD

from helpers import TINY, cli, model_inputs, random_batch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

CFG = TrainConfig(
    net=NetConfig(label_nc=8, ngf=16, n_downsample_global=3, n_blocks_global=2, ndf=16),
    loss=LossConfig(vgg_loss=False),
    run=RunOptions(device="cuda"),
)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


def test_bf16_step_stays_close_to_fp32() -> None:
    fp32 = Pix2PixHD(CFG, "fp32", Dist(device=torch.device("cuda")))
    bf16 = copy.deepcopy(fp32)
    bf16.precision = "bf16"
    x, real, _ = model_inputs(fp32, random_batch(8, 64, 128))
    fake32, terms32 = fp32.compute_losses(x, real)
    fake16, terms16 = bf16.compute_losses(x, real)
    assert rel(fake16, fake32) < 0.05
    for name in ("g_gan", "g_feat", "d_real", "d_fake"):
        assert (
            abs(float(getattr(terms16, name)) - float(getattr(terms32, name)))
            <= 0.05 * abs(float(getattr(terms32, name))) + 1e-3
        ), name
    fp32.step(x, real)
    bf16.step(x, real)
    for (name, a), b in zip(fp32.G.named_parameters(), bf16.G.parameters(), strict=True):
        assert rel(a.grad, b.grad) < 0.1, name  # type: ignore[arg-type]


def test_compiled_generator_matches_eager() -> None:
    model = Pix2PixHD(CFG, "fp32", Dist(device=torch.device("cuda")))
    x, _, _ = model_inputs(model, random_batch(8, 64, 128))
    with torch.no_grad():
        eager = model.G(x)
        compiled = torch.compile(model.G)(x)
    assert rel(compiled, eager) < 1e-4


def test_train_and_synthesize_on_cuda(toy_data: Path, tmp_path: Path) -> None:
    args = [a if a != "cpu" else "cuda" for a in TINY]
    code, out = cli("train-global", toy_data, "--run", tmp_path / "run", *args, "--max-steps", "3")
    assert code == 0, out
    test = toy_data / "test"
    code, out = cli(
        "synthesize",
        tmp_path / "run",
        test / "label",
        "--inst",
        test / "inst",
        "--out",
        tmp_path / "o",
        "--device",
        "cuda",
    )
    assert code == 0, out
    assert len(list((tmp_path / "o").glob("*.png"))) == 2
