"""p2phd export: ONNX files that onnxruntime runs as p2phd does, at any multiple size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from p2phd.checkpoint import load_net, require_checkpoint
from p2phd.ops import encode_input
from p2phd.runtime import DeviceOptions
from p2phd.synth.inputs import SynthItem, read_input, target_size
from p2phd.synth.run import Run
from p2phd.synth.styles import StyleSpec, pinned
from p2phd.synth.synthesizer import Synthesizer
from p2phd.visual import to_uint8

from helpers import TINY, cli

ort = pytest.importorskip("onnxruntime")  # the optional extra p2phd[export]


def export(run: Path, out: Path, *args: str) -> ort.InferenceSession:
    code, text = cli("export", run, "--out", out, "--quiet", *args)
    assert code == 0, text
    return ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])


def maps(n: int, h: int, w: int, label_nc: int, feat: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, label_nc, (n, h // 8, w // 8), generator=g)
    label = cells.repeat_interleave(8, 1).repeat_interleave(8, 2)
    inst = label * 1000 + torch.randint(0, 2, label.shape, generator=g)
    out = {"label": label, "instance": inst}
    if feat:
        out["features"] = torch.rand(n, feat, h, w, generator=g) * 2 - 1
    return out


def check(session: ort.InferenceSession, run: Path, raw: bool = False) -> None:
    """onnxruntime's images equal p2phd's within 1e-4 at two sizes (and two batch sizes)."""
    ckpt = require_checkpoint(run)
    net = ckpt.config.net
    G = load_net(ckpt, "G", torch.device("cpu"))
    m = net.size_multiple
    for n, h, w in ((1, 2 * m, 4 * m), (2, 3 * m, 2 * m)):
        given = maps(n, h, w, net.label_nc, net.feat_num if net.use_features else 0, h)
        inst = given["instance"] if net.instance else None
        x = encode_input(given["label"], inst, given.get("features"), label_nc=net.label_nc)
        with torch.no_grad():
            expected = G(x).numpy()
        names = [i.name for i in session.get_inputs()]
        feed = {"input": x.numpy()} if raw else {k: given[k].numpy() for k in names}
        image = session.run(None, feed)[0]
        assert image.shape == expected.shape
        assert np.abs(image - expected).max() <= 1e-4


def test_a_global_run(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli("train-global", toy_data, "--run", run, *TINY, "--max-steps", "1")[0] == 0
    session = export(run, tmp_path / "g.onnx")
    assert [i.name for i in session.get_inputs()] == ["label", "instance"]
    check(session, run)
    check(export(run, tmp_path / "raw.onnx", "--raw-input"), run, raw=True)


def test_a_feature_run(tiny_feature_run: Path, tmp_path: Path) -> None:
    session = export(tiny_feature_run, tmp_path / "f.onnx")
    assert [i.name for i in session.get_inputs()] == ["label", "instance", "features"]
    check(session, tiny_feature_run)


def test_a_feature_run_with_its_style_bank_inside_renders_as_synthesize(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    """--styles bank: a cluster index per instance id in, synthesize's image of the style
    map that pins the same clusters out; a class with fewer clusters takes the index modulo
    its count, and -1 (or an id past the table) gives the class mean."""
    session = export(tiny_feature_run, tmp_path / "b.onnx", "--styles", "bank")
    assert [i.name for i in session.get_inputs()] == ["label", "instance", "clusters"]
    synth = Synthesizer(Run.open(tiny_feature_run), DeviceOptions("cpu"))
    test = toy_data / "test"
    item = SynthItem(
        "toy_test_00000",
        test / "label" / "toy_test_00000.png",
        test / "inst" / "toy_test_00000.png",
    )
    r = read_input(item, synth.net, target_size(item, synth.net, None))
    assert r.inst is not None
    table = synth.pinned(r, StyleSpec(seed=3))  # instance id -> cluster: what a user picks
    clusters = np.full((1, int(r.inst.max()) + 1), -1, np.int64)
    for ident, style in table.items():
        clusters[0, ident] = style
    feed = {"label": r.label[None], "instance": r.inst[None]}
    image = session.run(None, feed | {"clusters": clusters})[0]
    expected = synth.render([r], [synth.styles(r, pinned(table, "instance"))])[0]
    got = to_uint8(torch.from_numpy(image[0]))
    assert np.abs(got.astype(int) - expected).max() <= 1

    bank = synth.bank
    car = min(i for i in table if i // 1000 == 6)
    wrapped = clusters.copy()
    wrapped[0, car] = table[car] + bank.clusters(6)  # past the class's count: modulo it
    np.testing.assert_allclose(session.run(None, feed | {"clusters": wrapped})[0], image, atol=1e-5)
    short = clusters[:, :car]  # the car's id is past the table: its class mean
    means = {ident: tuple(bank.means[ident // 1000].tolist()) for ident in table if ident >= car}
    mean_image = synth.render([r], [synth.styles(r, pinned(table | means, "instance"))])[0]
    got = to_uint8(torch.from_numpy(session.run(None, feed | {"clusters": short})[0][0]))
    assert np.abs(got.astype(int) - mean_image).max() <= 1


def test_styles_bank_needs_a_feature_run(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli("train-global", toy_data, "--run", run, *TINY, "--max-steps", "1")[0] == 0
    code, out = cli("export", run, "--out", tmp_path / "g.onnx", "--styles", "bank")
    assert code == 2 and "trained without instance features, so it has no style bank" in out
    assert not (tmp_path / "g.onnx").exists()


def test_a_local_run(toy_data: Path, tmp_path: Path) -> None:
    global_run, local = tmp_path / "global", tmp_path / "local"
    half = ["--load-width", "64", "--max-steps", "1"]  # G1 at half the local stage's size
    assert cli("train-global", toy_data, "--run", global_run, *TINY, *half)[0] == 0
    local_args = "--no-vgg-loss --num-workers 0 --device cpu --quiet --n-blocks-local 1 "
    local_args += "--epochs 1 --decay-epochs 1 --fix-global-epochs 1 --max-steps 1"
    # G2 takes its architecture from G1: no --ngf here
    code, out = cli(
        "train-local", toy_data, "--run", local, "--global", global_run, *local_args.split()
    )
    assert code == 0, out
    check(export(local, tmp_path / "l.onnx"), local)


def test_without_the_extra_it_says_what_to_install(
    toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxscript" else real(name, *a),
    )
    run = tmp_path / "run"
    assert cli("train-global", toy_data, "--run", run, *TINY, "--max-steps", "1")[0] == 0
    code, out = cli("export", run, "--out", tmp_path / "g.onnx")
    assert code == 2 and "p2phd export needs onnxscript: pip install 'p2phd[export]'" in out
    assert not (tmp_path / "g.onnx").exists()
