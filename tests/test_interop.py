"""import-reference: NVIDIA/pix2pixHD checkpoints and cluster files, same outputs, no pickle."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import reference_forward as ref
import torch
from safetensors.torch import load_file

from p2phd.checkpoint import load_net, require_checkpoint
from p2phd.config import NetConfig
from p2phd.interop import reference_name
from p2phd.nets.discriminator import build_discriminator
from p2phd.ops import encode_input
from p2phd.synth.run import Run
from p2phd.training.distributed import Dist
from p2phd.training.gan import Pix2PixHD

from helpers import TINY_REFERENCE, cli, write_reference_checkpoint

IMPORT = ["--no-vgg-loss", "--quiet"]


def label_input(label_nc: int, h: int, w: int, feat: int = 0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, label_nc, (1, h // 8, w // 8), generator=g)
    label = label.repeat_interleave(8, 1).repeat_interleave(8, 2)
    inst = label * 1000 + torch.randint(0, 2, label.shape, generator=g)
    features = torch.rand(1, feat, h, w, generator=g) * 2 - 1 if feat else None
    return encode_input(label, inst, features, label_nc=label_nc)


def import_g(tmp_path: Path, key_file: str, *args: str) -> tuple[Path, dict[str, torch.Tensor]]:
    shapes, _ = ref.parse(key_file)
    state = ref.random_state(shapes)
    folder = tmp_path / "ckpt"
    folder.mkdir(exist_ok=True)
    torch.save(state, folder / "latest_net_G.pth")
    code, out = cli("import-reference", folder, "--run", tmp_path / "run", *args, *IMPORT)
    assert code == 0, out
    return tmp_path / "run", state


def assert_parity(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() <= 1e-4  # fp32, CPU, outputs in [-1, 1]


def test_global_generator_reproduces_the_reference(tmp_path: Path) -> None:
    run, state = import_g(tmp_path, "G_global_ngf64_in36")
    _, leaves = ref.parse("G_global_ngf64_in36")
    opened = Run.open(run)
    G, _ = opened.generator(torch.device("cpu")), opened.checkpoint
    x = label_input(35, 32, 64)
    with torch.no_grad():
        assert_parity(G(x), ref.generator(x, state, leaves))
    assert json.loads((run / "config.json").read_text())["config"]["stage"] == "global"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key_file", "size", "args"),
    [
        ("G_local_ngf32_in36_1enh", (64, 128), ["--netg", "local", "--ngf", "32"]),
        (
            "G_local_ngf16_in36_2enh",
            (128, 256),
            ["--netg", "local", "--ngf", "16", "--n-local-enhancers", "2"],
        ),
    ],
)
def test_local_enhancers_reproduce_the_reference(
    tmp_path: Path, key_file: str, size: tuple[int, int], args: list[str]
) -> None:
    run, state = import_g(tmp_path, key_file, *args)
    _, leaves = ref.parse(key_file)
    opened = Run.open(run)
    G, ckpt = opened.generator(torch.device("cpu")), opened.checkpoint
    assert ckpt.config.stage == "joint"  # train-joint fine-tunes it
    x = label_input(35, *size)
    with torch.no_grad():
        assert_parity(G(x), ref.generator(x, state, leaves))


@pytest.mark.parametrize(
    ("key_file", "args"),
    [
        ("D_in39_ndf64_3layers_numD2_nointermfeat", ["--no-ganfeat-loss"]),
        ("D_in39_ndf64_3layers_numD3_intermfeat", ["--num-d", "3"]),
    ],
)
def test_discriminators_reproduce_the_reference(
    tmp_path: Path, key_file: str, args: list[str]
) -> None:
    """D and E come with a small G in the same folder; G's own parity is tested above."""
    shapes, leaves = ref.parse(key_file)
    state = ref.random_state(shapes)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    net = NetConfig(ngf=4, n_downsample_global=1, n_blocks_global=1)
    g = generator_state(net)
    torch.save(
        {reference_name(k, "G", net, True): v for k, v in g.items()}, folder / "latest_net_G.pth"
    )
    torch.save(state, folder / "latest_net_D.pth")
    code, out = cli(
        "import-reference",
        folder,
        "--run",
        tmp_path / "run",
        "--ngf",
        "4",
        "--n-downsample-global",
        "1",
        "--n-blocks-global",
        "1",
        *args,
        *IMPORT,
    )
    assert code == 0, out
    ckpt = require_checkpoint(tmp_path / "run")
    D = build_discriminator(ckpt.config.net)
    D.load_state_dict(ckpt.tensors("D"))
    x = torch.rand(1, 39, 64, 128) * 2 - 1
    with torch.no_grad():
        ours, theirs = D(x), ref.discriminator(x, state, leaves)
    for o_scale, t_scale in zip(ours, theirs, strict=True):
        for o, t in zip(o_scale[-len(t_scale) :], t_scale, strict=True):
            assert o.shape == t.shape and (o - t).abs().max() <= 1e-4


def generator_state(net: NetConfig) -> dict[str, torch.Tensor]:
    from p2phd.nets.generator import build_generator

    return build_generator(net).state_dict()


def test_encoder_and_clusters_reproduce_the_reference(tmp_path: Path) -> None:
    shapes, leaves = ref.parse("E_nef16_feat3")
    e_state = ref.random_state(shapes, seed=1)
    net = NetConfig(ngf=4, n_downsample_global=1, n_blocks_global=1, instance_feat=True)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    torch.save(
        {reference_name(k, "G", net, True): v for k, v in generator_state(net).items()},
        folder / "latest_net_G.pth",
    )
    torch.save(e_state, folder / "latest_net_E.pth")
    centres = {
        26: np.random.default_rng(0).uniform(-1, 1, (10, 3)).astype(np.float32),
        7: np.zeros((3, 3), np.float32),
    }
    np.save(folder / "features_clustered_010.npy", centres, allow_pickle=True)  # the reference's
    code, out = cli(
        "import-reference",
        folder,
        "--run",
        tmp_path / "run",
        "--ngf",
        "4",
        "--n-downsample-global",
        "1",
        "--n-blocks-global",
        "1",
        "--instance-feat",
        "--json",
        "--no-vgg-loss",
    )
    assert code == 0, out
    assert json.loads(out)["clusters"] == 2
    clusters = load_file(str(tmp_path / "run" / "clusters.safetensors"))
    assert np.array_equal(clusters["label_026"].numpy(), centres[26])
    E = load_net(require_checkpoint(tmp_path / "run"), "E", torch.device("cpu"))
    image = torch.rand(2, 3, 32, 64) * 2 - 1
    inst = torch.randint(0, 4, (2, 32, 64)) * 1000
    with torch.no_grad():
        assert_parity(E(image, inst), ref.encoder(image, inst, e_state, leaves))


def test_mismatches_are_listed_never_partially_loaded(tmp_path: Path) -> None:
    shapes, _ = ref.parse("G_global_ngf64_in36")
    state = ref.random_state({k: v for k, v in shapes.items() if k.startswith("model.1.")})
    folder = tmp_path / "ckpt"
    folder.mkdir()
    state["model.99.weight"] = torch.zeros(1)
    torch.save(state, folder / "latest_net_G.pth")
    code, out = cli("import-reference", folder, "--run", tmp_path / "run", *IMPORT)
    assert (
        code == 2
        and "missing (54): model.10.bias" in out
        and "unexpected (1): model.99.weight" in out
    )
    assert not (tmp_path / "run").exists()
    torch.save(ref.random_state(shapes), folder / "latest_net_G.pth")
    code, out = cli("import-reference", folder, "--run", tmp_path / "run", "--ngf", "32", *IMPORT)
    assert code == 2 and "shape" in out and "model.1.weight (64, 36, 7, 7) != (32, 36, 7, 7)" in out
    code, out = cli("import-reference", tmp_path / "nowhere", "--run", tmp_path / "run", *IMPORT)
    assert code == 2 and "latest_net_G.pth: not found" in out


class _Evil:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_a_pth_that_would_run_code_is_refused(tmp_path: Path) -> None:
    folder, marker = tmp_path / "ckpt", tmp_path / "pwned"
    folder.mkdir()
    torch.save({"model.1.weight": torch.zeros(1), "x": _Evil(marker)}, folder / "latest_net_G.pth")
    code, out = cli("import-reference", folder, "--run", tmp_path / "run", *IMPORT)
    assert code == 2 and len(out.strip().splitlines()) == 1, out  # not torch's seven lines
    assert "latest_net_G.pth: holds code or objects beyond tensors (posix.system)" in out
    assert "p2phd will not run it" in out and "weights_only" not in out
    assert not marker.exists()


def test_a_cluster_file_that_would_run_code_is_refused(tmp_path: Path) -> None:
    from p2phd.errors import CheckpointError
    from p2phd.interop import read_cluster_file

    marker = tmp_path / "pwned"
    payload = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        payload, {"descr": "|O", "fortran_order": False, "shape": ()}
    )
    payload.write(pickle.dumps({26: _Evil(marker)}, protocol=2))
    path = tmp_path / "features_clustered_010.npy"
    path.write_bytes(payload.getvalue())  # the header writer puts the magic first
    with pytest.raises(CheckpointError, match=r"carries posix\.system.*refusing it") as info:
        read_cluster_file(path, 3)
    assert "nothing in it was run" in str(info.value)
    assert not marker.exists()
    np.save(tmp_path / "bad_shape.npy", {26: np.zeros((2, 5))}, allow_pickle=True)
    with pytest.raises(CheckpointError, match=r"entry 26 is not \[k, 3\] centres"):
        read_cluster_file(tmp_path / "bad_shape.npy", 3)


def test_imported_runs_synthesize_and_fine_tune(toy_data: Path, tmp_path: Path) -> None:
    """A reference-layout 512p-style checkpoint of a tiny net: import, synthesize with
    styles, then train-local from it (its G1 and D load into the 1024p run)."""
    folder = write_reference_checkpoint(tmp_path / "ckpt")
    code, out = cli(
        "import-reference", folder, "--run", tmp_path / "imported", *TINY_REFERENCE, "--quiet"
    )
    assert code == 0, out
    code, out = cli(
        "synthesize",
        tmp_path / "imported",
        toy_data / "test" / "label",
        "--inst",
        toy_data / "test" / "inst",
        "--out",
        tmp_path / "o",
        "--style",
        "cluster=1",
        "--device",
        "cpu",
        "--quiet",
    )
    assert code == 0, out
    opts = "--no-vgg-loss --device cpu --quiet --num-workers 0 --n-blocks-local 1 --epochs 1 "
    opts += "--decay-epochs 1 --fix-global-epochs 1 --max-steps 2"
    code, out = cli(
        "train-local",
        toy_data,
        "--run",
        tmp_path / "local",
        "--global",
        tmp_path / "imported",
        *opts.split(),
    )
    assert code == 0, out  # the local run took its G1 and D from the imported run


def test_an_imported_local_generator_fine_tunes_with_train_joint(
    toy_data: Path, tmp_path: Path
) -> None:
    from p2phd.config import LossConfig, TrainConfig

    net = NetConfig(
        label_nc=8,
        ngf=4,
        n_downsample_global=2,
        n_blocks_global=1,
        n_local_enhancers=1,
        n_blocks_local=1,
        ndf=8,
        n_layers_d=2,
        num_d=3,
    )
    cfg = TrainConfig(stage="joint", net=net, loss=LossConfig(vgg_loss=False))
    model = Pix2PixHD(cfg, "fp32", Dist())
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for role, module in (("G", model.G), ("D", model.D)):
        state = {reference_name(k, role, net, True): v for k, v in module.state_dict().items()}
        assert role != "G" or "model1_1.1.weight" in state  # the reference's local layout
        torch.save(state, folder / f"latest_net_{role}.pth")
    code, out = cli(
        "import-reference",
        folder,
        "--run",
        tmp_path / "run",
        "--netg",
        "local",
        "--label-nc",
        "8",
        "--ngf",
        "4",
        "--n-downsample-global",
        "2",
        "--n-blocks-global",
        "1",
        "--n-blocks-local",
        "1",
        "--ndf",
        "8",
        "--n-layers-d",
        "2",
        "--num-d",
        "3",
        *IMPORT,
    )
    assert code == 0, out
    code, out = cli(
        "train-joint",
        toy_data,
        "--run",
        tmp_path / "run",
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--max-steps",
        "2",
        "--quiet",
    )
    assert code == 0, out
    trained = require_checkpoint(tmp_path / "run")
    assert trained.step == 2 and trained.config.stage == "joint"
    g1 = "global_generator.trunk.1.weight"  # G1 trains in the joint stage
    assert not torch.equal(trained.tensors("G")[g1], model.G.state_dict()[g1])
