"""Coarse-to-fine: the local enhancer, train-local with G1 frozen, train-joint unfreezing it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from p2phd.checkpoint import RunDir, config_record, latest_checkpoint, save_checkpoint
from p2phd.config import LossConfig, NetConfig, RunOptions, TrainConfig
from p2phd.nets.blocks import set_activation_checkpointing
from p2phd.nets.generator import LocalEnhancer
from p2phd.training.distributed import Dist
from p2phd.training.gan import Pix2PixHD
from p2phd.training.state import start_from_global, training_tensors

from helpers import TINY, cli, model_inputs, random_batch

# Global runs train at half width (64x32) and local runs at full width (128x64).
GLOBAL = [*TINY, "--load-width", "64", "--epochs", "1", "--decay-epochs", "1"]
# Local runs take the architecture from the global run; only run options are given.
LOCAL = "--no-vgg-loss --num-workers 0 --device cpu --quiet --n-blocks-local 1 --epochs 2 "
LOCAL = [*(LOCAL + "--decay-epochs 2 --fix-global-epochs 1").split()]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_local_enhancer_reference_parameter_counts() -> None:
    with torch.device("meta"):
        one = LocalEnhancer(36, ngf=32, n_local_enhancers=1, n_blocks_local=3)
        two = LocalEnhancer(36, ngf=16, n_local_enhancers=2, n_blocks_local=3)
    assert n_params(one) == 182_857_059
    assert n_params(one.global_generator) == 182_537_344
    assert n_params(one.enhancers[0].front) == 74_976  # the reference's model1_1
    assert n_params(one.enhancers[0].back) == 244_739  # model1_2
    assert n_params(two) == 182_947_699


@pytest.mark.parametrize("levels", [1, 2])
def test_local_enhancer_shapes_and_input_pyramid(levels: int) -> None:
    net = LocalEnhancer(
        5,
        ngf=4,
        n_downsample_global=2,
        n_blocks_global=1,
        n_local_enhancers=levels,
        n_blocks_local=1,
    )
    for size in ((32, 64), (64, 32)):
        assert net(torch.randn(2, 5, *size)).shape == (2, 3, *size)
    seen = []
    net.global_generator.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-2:]))
    net(torch.randn(1, 5, 64, 64))
    assert seen == [torch.Size([64 // 2**levels] * 2)]  # G1 sees the coarsest level


def test_activation_checkpointing_keeps_the_gradients() -> None:
    cfg = TrainConfig(
        stage="joint",
        net=NetConfig(
            label_nc=4,
            ngf=4,
            n_downsample_global=2,
            n_blocks_global=1,
            n_local_enhancers=1,
            n_blocks_local=1,
            ndf=4,
            n_layers_d=2,
        ),
        loss=LossConfig(vgg_loss=False),
        run=RunOptions(device="cpu"),
    )
    plain = Pix2PixHD(cfg, "fp32", Dist())
    saving = copy.deepcopy(plain)
    set_activation_checkpointing(saving.G, True)
    set_activation_checkpointing(saving.D, True)
    x, real, _ = model_inputs(plain, random_batch(height=32, width=64))
    plain.step(x, real)
    saving.step(x, real)
    for (name, a), b in zip(plain.G.named_parameters(), saving.G.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def global_run(toy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("stages") / "global"
    code, out = cli("train-global", toy_data, "--run", run, *GLOBAL, "--max-steps", "4")
    assert code == 0, out
    return run


def tensors(run: Path, name: str, step: int | None = None) -> dict[str, torch.Tensor]:
    ckpts = run / "checkpoints"
    folder = f"step-{step:07d}" if step else (ckpts / "LATEST").read_text().strip()
    return load_file(str(ckpts / folder / f"{name}.safetensors"))


def test_local_then_joint_freezes_then_trains_g1(
    global_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "local"
    code, out = cli(
        "train-local",
        toy_data,
        "--run",
        run,
        "--global",
        global_run,
        *LOCAL,
        "--save-every",
        "1",
        "--keep-last",
        "99",
        "--max-steps",
        "3",
    )
    assert code == 0, out
    g1 = {
        k.removeprefix("trunk."): v
        for k, v in tensors(global_run, "G").items()
        if k.startswith("trunk.")
    }
    for step in (1, 2, 3):
        local = tensors(run, "G", step)
        for k, v in g1.items():  # bit-identical to the global run's G1 after every step
            assert torch.equal(local[f"global_generator.trunk.{k}"], v), (step, k)
    assert not torch.equal(
        tensors(run, "G", 1)["enhancers.0.front.1.weight"],
        tensors(run, "G", 3)["enhancers.0.front.1.weight"],
    )
    optim = tensors(run, "optim", 3)
    assert not any(k.startswith("G.global_generator") for k in optim)  # Adam holds G2 only
    # the global D's scales went to the coarsest scales; the new finest one is random
    d_global, d_local = tensors(global_run, "D"), tensors(run, "D", 1)
    assert set(d_local) > set(d_global) and any(k.startswith("scales.2.") for k in d_local)

    code, out = cli(
        "train-joint",
        toy_data,
        "--run",
        run,
        "--device",
        "cpu",
        "--quiet",
        "--num-workers",
        "0",
        "--max-steps",
        "5",
        "--save-every",
        "1",
        "--keep-last",
        "99",
    )
    assert code == 0, out
    after = tensors(run, "G", 5)
    changed = [k for k, v in g1.items() if not torch.equal(after[f"global_generator.trunk.{k}"], v)]
    assert len(changed) == len(g1)  # every G1 tensor moved in the joint stage
    assert not torch.equal(
        after["enhancers.0.front.1.weight"], tensors(run, "G", 3)["enhancers.0.front.1.weight"]
    )
    assert any(k.startswith("G.global_generator") for k in tensors(run, "optim", 5))
    state = json.loads((run / "checkpoints" / "step-0000005" / "state.json").read_text())
    assert state["stage"] == "joint" and state["lr"] == 2e-4
    history = json.loads((run / "config.json").read_text())["history"]
    assert [(h["stage"], h["event"], h["step"]) for h in history] == [
        ("local", "start", 0),
        ("joint", "resume", 3),
    ]
    assert history[0]["from"].endswith("step-0000004")


def test_local_stage_ends_after_fix_global_epochs(
    global_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "local"
    code, out = cli(
        "train-local",
        toy_data,
        "--run",
        run,
        "--global",
        global_run,
        *LOCAL,
        "--batch-size",
        "4",
        "--json",
    )
    assert code == 0, out
    summary = json.loads(out[out.index("{") :])
    assert summary["stage"] == "local" and summary["step"] == summary["total_steps"] == 2


def test_a_local_run_resumes_without_global(
    global_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "local"
    code, out = cli(
        "train-local", toy_data, "--run", run, "--global", global_run, *LOCAL, "--max-steps", "1"
    )
    assert code == 0, out
    code, out = cli("train-local", toy_data, "--run", run, "--max-steps", "2", "--json")
    assert code == 0, out  # the run's own config: G1's source, the stage, the schedule
    assert json.loads(out[out.index("{") :])["step"] == 2
    code, out = cli("train-local", toy_data, "--run", tmp_path / "new", *LOCAL)
    assert code == 2 and "a new local run needs --global GLOBAL_RUN" in out


def test_joint_resume_is_exact(global_run: Path, toy_data: Path, tmp_path: Path) -> None:
    runs = {}
    for name, stops in (("straight", ["6"]), ("split", ["4", "6"])):
        run = runs[name] = tmp_path / name
        assert (
            cli(
                "train-local",
                toy_data,
                "--run",
                run,
                "--global",
                global_run,
                *LOCAL,
                "--max-steps",
                "2",
            )[0]
            == 0
        )
        for stop in stops:
            assert (
                cli(
                    "train-joint",
                    toy_data,
                    "--run",
                    run,
                    "--device",
                    "cpu",
                    "--quiet",
                    "--num-workers",
                    "0",
                    "--max-steps",
                    stop,
                )[0]
                == 0
            )
    for name in ("G", "D", "optim"):
        a, b = tensors(runs["straight"], name), tensors(runs["split"], name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ngf", "8"], "the global run's G1 has ngf 8, so 1 enhancer(s) need --ngf 4"),
        (["--n-blocks-global", "2"], "the global run has n_blocks_global 1, not 2"),
        (["--no-instance"], "the global run has instance True, not False"),
        (["--num-d", "1"], "--num-d 1: the global run's D has 2 scales"),
    ],
)
def test_local_refuses_what_does_not_fit_the_global_run(
    global_run: Path, toy_data: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    code, out = cli(
        "train-local", toy_data, "--run", tmp_path / "l", "--global", global_run, *LOCAL, *args
    )
    assert code == 2 and message in out, out


def test_stage_order_is_enforced(global_run: Path, toy_data: Path, tmp_path: Path) -> None:
    code, out = cli("train-joint", toy_data, "--run", global_run, "--device", "cpu")
    assert code == 2 and "train-local run" in out
    code, out = cli("train-local", toy_data, "--run", global_run, "--global", global_run, *LOCAL)
    assert code == 2 and "global-stage run" in out and "train-global" in out
    code, out = cli("train-local", toy_data, "--run", tmp_path / "l", "--global", tmp_path, *LOCAL)
    assert code == 2 and "not a p2phd run" in out


def test_init_from_global_maps_d_scales_by_resolution(tmp_path: Path) -> None:
    net = {"label_nc": 4, "n_downsample_global": 2, "n_blocks_global": 1, "ndf": 4, "n_layers_d": 2}
    loss, opts = LossConfig(vgg_loss=False), RunOptions(device="cpu")
    g_cfg = TrainConfig(net=NetConfig(**net, ngf=8, num_d=2), loss=loss, run=opts)
    l_cfg = TrainConfig(
        stage="local",
        loss=loss,
        run=opts,
        net=NetConfig(**net, ngf=4, num_d=3, n_local_enhancers=1),
    )
    glob = Pix2PixHD(g_cfg, "fp32", Dist())
    tensors_, groups = training_tensors(glob)
    save_checkpoint(
        RunDir(tmp_path),
        1,
        tensors_,
        {"optim": groups, "stage": "global"},
        config_record(g_cfg, []),
        keep_last=1,
    )
    local = Pix2PixHD(l_cfg, "fp32", Dist())
    start_from_global(local, latest_checkpoint(RunDir(tmp_path)))  # type: ignore[arg-type]
    for k in (0, 1):  # scales[0] is the coarsest in both: same absolute resolution
        for a, b in zip(glob.D.scales[k].parameters(), local.D.scales[k].parameters(), strict=True):
            assert torch.equal(a, b)
    trunk = glob.G.trunk.state_dict()  # type: ignore[union-attr]
    for k, v in local.G.global_generator.trunk.state_dict().items():  # type: ignore[union-attr]
        assert torch.equal(v, trunk[k])
    assert all(not p.requires_grad for p in local.G.global_generator.parameters())  # type: ignore[union-attr]
    assert all(
        id(p) not in {id(q) for q in local.G.global_generator.parameters()}  # type: ignore[union-attr]
        for p in local.opt_g.param_groups[0]["params"]
    )


def test_a_local_stage_must_feed_g1_the_size_it_was_trained_at(
    toy_data: Path, tmp_path: Path
) -> None:
    full = tmp_path / "global_at_128"  # trained at the prepped 128x64: G1 should see that
    code, out = cli("train-global", toy_data, "--run", full, *TINY, "--max-steps", "1")
    assert code == 0, out
    local = tmp_path / "local"
    code, out = cli("train-local", toy_data, "--run", local, "--global", full, *LOCAL)
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert "its G1 was trained at 128x64, but this local stage trains at 128x64" in out
    assert "G1 would see at 64x32" in out and "--load-width 256" in out
    assert not (local / "config.json").exists()
    code, out = cli(
        "train-local", toy_data, "--run", local, "--global", full, *LOCAL, "--load-width", "256"
    )
    assert code == 0, out  # 256x128 halved is G1's 128x64


def test_trainings_first_line_says_the_size(
    global_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    loud = [a for a in TINY if a != "--quiet"]
    code, out = cli("train-global", toy_data, "--run", tmp_path / "g", *loud, "--max-steps", "1")
    assert code == 0, out
    first = out.splitlines()[0]
    assert first == (
        "train-global: 8 images at 128x64 (the prepped size; --load-width W resizes), "
        "200 epochs, 1 step"
    )
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        tmp_path / "h",
        *loud,
        "--load-width",
        "64",
        "--max-steps",
        "1",
    )
    assert out.splitlines()[0].startswith("train-global: 8 images at 64x32 (--load-width 64)")
