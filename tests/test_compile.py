"""--compile: the training step (G, D, E, VGG and every loss) and inference as one graph,
without breaks or recompilation, equal to eager within rounding.

The fast tests trace with dynamo and AOTAutograd but run eager kernels ("aot_eager"): the
graph is what `fullgraph=True` must capture, whatever backend then runs it. The slow test
runs inductor, the real compiler, on the CPU with the system's C compiler."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch._dynamo.utils import counters

from p2phd.config import LossConfig, NetConfig, RunOptions, TrainConfig
from p2phd.nets.vgg import Vgg19Features
from p2phd.training.distributed import Dist
from p2phd.training.gan import Pix2PixHD

from helpers import TINY, cli, model_inputs, random_batch

LR = 2e-4


def config(stage: str, features: bool, vgg: Path | None, compile: bool) -> TrainConfig:
    local = stage != "global"
    net = NetConfig(
        label_nc=4,
        ngf=4,
        n_downsample_global=2,
        n_blocks_global=1,
        ndf=4,
        n_layers_d=2,
        num_d=3 if local else 2,
        n_local_enhancers=int(local),
        n_blocks_local=1,
        instance_feat=features,
        nef=4,
        n_downsample_e=2,
    )
    loss = LossConfig(vgg_loss=vgg is not None)
    run = RunOptions(device="cpu", compile=compile, vgg_weights=str(vgg) if vgg else None)
    return TrainConfig(stage=stage, net=net, loss=loss, run=run)  # type: ignore[arg-type]


@pytest.fixture()
def aot_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch.compile
    monkeypatch.setattr(torch, "compile", functools.partial(real, backend="aot_eager"))
    torch._dynamo.reset()
    counters.clear()


def compare(stage: str, features: bool, vgg: Path | None, steps: int = 3) -> None:
    """Eager and compiled twins, `steps` steps on the same batches: the losses agree, the
    gradients of step 1 agree (Adam's first moment is 0.1 g), one graph, no break, no
    recompilation; the weights stay within Adam's step size of each other."""
    torch.manual_seed(0)
    eager = Pix2PixHD(config(stage, features, vgg, False), "fp32", Dist())
    torch.manual_seed(0)  # the same initial weights
    compiled = Pix2PixHD(config(stage, features, vgg, True), "fp32", Dist())
    for step in range(steps):
        batch = random_batch(seed=step, height=16, width=32)
        _, te, _ = eager.step(*model_inputs(eager, batch))
        _, tc, _ = compiled.step(*model_inputs(compiled, batch))
        for k, (e, c) in zip(te._fields, zip(te, tc, strict=True), strict=True):
            assert float(c) == pytest.approx(float(e), rel=1e-4, abs=1e-6), (step, k)
        if step == 0:
            moments = [
                (eager.opt_g.state[p]["exp_avg"], compiled.opt_g.state[q]["exp_avg"])
                for p, q in zip(
                    eager.opt_g.param_groups[0]["params"],
                    compiled.opt_g.param_groups[0]["params"],
                    strict=True,
                )
            ]
            scale = max(float(a.abs().max()) for a, _ in moments)
            assert all(float((a - b).abs().max()) <= 1e-4 * scale for a, b in moments)
    assert dict(counters["graph_break"]) == {}
    assert counters["stats"]["unique_graphs"] == 1  # compiled once, reused by every step
    for a, b in zip(eager.G.parameters(), compiled.G.parameters(), strict=True):
        assert (
            float((a - b).detach().abs().max()) <= 2 * steps * LR
        )  # a sign flip of Adam's step at most


@pytest.mark.parametrize(
    ("stage", "features"), [("global", False), ("global", True), ("local", False), ("joint", True)]
)
def test_the_step_is_one_graph(aot_eager: None, stage: str, features: bool) -> None:
    compare(stage, features, None)


def test_the_step_with_the_vgg_loss_is_one_graph(aot_eager: None, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    vgg = tmp_path / "vgg.safetensors"
    save_file(
        {k: torch.randn_like(v) * 0.05 for k, v in Vgg19Features().features.state_dict().items()},
        str(vgg),
    )
    compare("global", False, vgg, steps=2)


def test_compiled_inference_equals_eager(aot_eager: None, toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli("train-global", toy_data, "--run", run, *TINY, "--max-steps", "1")[0] == 0
    test = toy_data / "test"
    args = [
        "synthesize",
        run,
        test / "label",
        "--inst",
        test / "inst",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert cli(*args, "--out", tmp_path / "eager")[0] == 0
    assert cli(*args, "--out", tmp_path / "compiled", "--compile")[0] == 0
    assert dict(counters["graph_break"]) == {}
    for image in sorted((tmp_path / "eager").glob("*.png")):
        a = np.asarray(Image.open(image)).astype(int)
        b = np.asarray(Image.open(tmp_path / "compiled" / image.name)).astype(int)
        assert np.abs(a - b).max() <= 1, image.name


@pytest.mark.slow
def test_inductor_compiles_the_step_with_features() -> None:
    """The real compiler on the CPU (C++ from the system's compiler): minutes, hence slow.

    In a cache of its own: torch 2.13 reuses kernels that inductor built under another
    ATEN_CPU_CAPABILITY, and they crash (a segfault here, after a run without the setting)."""
    from torch._inductor.utils import fresh_cache

    torch._dynamo.reset()
    counters.clear()
    with fresh_cache():
        compare("global", True, None)
