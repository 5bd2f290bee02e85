"""Everyday use: Cityscapes as people hold it, class names everywhere, inspect, synthesis at the
training width, resume and extend without repeating options, a readable progress bar."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from safetensors.torch import save_file

from p2phd.nets.vgg import Vgg19Features

from helpers import TINY, cli

TEST = ["--device", "cpu", "--quiet"]
CITY = "aachen_000000_0000{:02d}"


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def cityscapes_named(root: Path, keys: range = range(3)) -> Path:
    """The reference's own sample layout, with Cityscapes' file names inside it."""
    for i in keys:
        for split in ("train", "test"):
            key = CITY.format(i + (10 if split == "test" else 0))
            label = np.full((64, 128), 7, np.uint8)  # road
            label[20:40, 10:50] = 26  # a car
            inst = label.astype(np.uint16)
            inst[20:40, 10:50] = 26000 + i
            save(root / f"{split}_label" / f"{key}_gtFine_labelIds.png", label)
            save(root / f"{split}_inst" / f"{key}_gtFine_instanceIds.png", inst)
            save(root / f"{split}_img" / f"{key}_leftImg8bit.png", np.zeros((64, 128, 3), np.uint8))
    return root


def test_cityscapes_names_pair_in_the_reference_layout(tmp_path: Path) -> None:
    src = cityscapes_named(tmp_path / "src")
    code, out = cli("prep", src, tmp_path / "data", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["counts"] == {"train": 3, "test": 3} and report["dataset"] == "cityscapes"
    assert report["label_nc"] == 35 and not report["label_nc_inferred"]  # not "inferred 27"
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert manifest["class_names"][26] == "car" and len(manifest["class_names"]) == 35
    keys = [i["key"] for i in manifest["splits"]["train"]["items"]]
    assert keys == [CITY.format(i) for i in range(3)]


def test_a_mismatch_names_a_file_on_each_side_and_the_rule(tmp_path: Path) -> None:
    src = cityscapes_named(tmp_path / "src")
    (src / "train_img" / f"{CITY.format(1)}_leftImg8bit.png").rename(
        src / "train_img" / "elsewhere_leftImg8bit.png"
    )
    code, out = cli("prep", src, tmp_path / "data", "--quiet")
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert f"{CITY.format(1)}_gtFine_labelIds.png (key '{CITY.format(1)}') has no partner" in out
    assert "elsewhere_leftImg8bit.png (key 'elsewhere') has no partner either" in out
    assert "files pair by key: the file name without its extension and without" in out


def test_class_names_file_and_names_on_the_command_line(toy_source: Path, tmp_path: Path) -> None:
    names = ["sky", "road", "sidewalk", "building", "tree", "pole", "car", "person"]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    data = tmp_path / "data"
    code, out = cli("prep", toy_source, data, "--class-names", tmp_path / "names.txt", "--json")
    assert code == 0 and json.loads(out)["class_names"] == names
    run = tmp_path / "run"
    args = [*TINY, "--instance-feat", "--max-steps", "2"]
    assert cli("train-global", data, "--run", run, *args)[0] == 0
    assert cli("encode-features", run, data, *TEST)[0] == 0
    code, out = cli("cluster", run, "--k", "2")
    assert code == 0 and "car: 2" in out and "person (class 7) has no clusters" in out
    clusters = json.loads((run / "clusters.json").read_text())
    assert clusters["classes"]["6"]["name"] == "car" and clusters["names"]["7"] == "person"
    style = tmp_path / "style.json"
    style.write_text(json.dumps({"classes": {"tree": [0.1, 0.2, 0.3]}}))
    test = data / "test"
    code, out = cli(
        "synthesize",
        run,
        test / "label",
        "--inst",
        test / "inst",
        "--out",
        tmp_path / "o",
        "--relabel",
        "tree:building",
        "--variations",
        "3",
        "--vary",
        "class:car",
        "--style-map",
        style,
        "--device",
        "cpu",
    )
    assert code == 0, out
    assert "--variations 3: car has 2 clusters; variations 2..2 repeat them in turn" in out
    page = (tmp_path / "o" / "index.html").read_text()
    assert "6 car" in page and "variation 2: car in its cluster 0" in page  # legend, caption
    style.write_text(json.dumps({"classes": {"car": 5}}))  # messages name the class
    code, out = cli("synthesize", run, test / "label", "--inst", test / "inst",
                    "--out", tmp_path / "o5", "--style-map", style, "--device", "cpu")  # fmt: skip
    assert code == 2 and "cluster 5 does not exist for car (class 6), which has 2" in out, out
    code, out = cli(
        "synthesize",
        run,
        test / "label",
        "--inst",
        test / "inst",
        "--out",
        tmp_path / "o",
        "--relabel",
        "tree:castle",
        *TEST,
    )
    assert code == 2 and "unknown class 'castle'; use one of sky, road" in out


def test_inspect_names_the_classes_of_a_toy_source(toy_source: Path) -> None:
    """A map in the toy's own source folder is named by its toy.json (it said "class 6")."""
    label = sorted((toy_source / "train_label").glob("*.png"))[0]
    code, out = cli("inspect", label, "--json")
    assert code == 0, out
    names = {c["id"]: c["name"] for c in json.loads(out)["classes"]}
    assert names and all(not n.startswith("class ") for n in names.values()), names
    assert names.get(0, "sky") == "sky" and names.get(6, "car") == "car"


def test_encode_features_names_the_classes(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_feature_run, run)
    code, out = cli("encode-features", run, toy_data, "--device", "cpu")
    assert code == 0, out
    counts = " ".join(out.split()).split("instances per class: ", 1)[1]
    assert "car: " in counts and "class " not in counts, out


def test_inspect_a_label_map_a_run_and_a_dataset(toy_data: Path, tiny_feature_run: Path) -> None:
    label = toy_data / "test" / "label" / "toy_test_00000.png"
    inst = toy_data / "test" / "inst" / "toy_test_00000.png"
    code, out = cli("inspect", label, "--inst", inst, "--json")
    assert code == 0, out
    report = json.loads(out)
    ids = np.asarray(Image.open(inst)).astype(int)
    cars = [o for o in report["instances"] if o["class"] == 6]
    assert cars and all(o["name"] == "car" for o in cars)  # names from the dataset it lies in
    for o in report["instances"]:
        ys, xs = np.nonzero(ids == o["id"])
        assert o["area"] == len(xs) and o["box"] == [xs.min(), ys.min(), xs.max(), ys.max()]
    shares = {c["name"]: c["share"] for c in report["classes"]}
    assert abs(sum(shares.values()) - 1) < 1e-3 and "road" in shares
    code, out = cli("inspect", label, "--inst", inst)
    assert code == 0 and "objects" in out and "--relabel-instance" in out
    run = json.loads(cli("inspect", tiny_feature_run, "--json")[1])
    assert run["stage"] == "global" and run["step"] == 2 and run["epoch"] == 1
    assert run["clusters"]["car"] == 2 and run["encoded"]["car"] >= 8
    assert run["data"]["class_names"][6] == "car" and run["train_size"] == [128, 64]
    data = json.loads(cli("inspect", toy_data, "--json")[1])
    assert data["splits"]["train"]["items"] == 8 and data["label_nc"] == 8
    assert data["class_names"][6] == "car" and data["dataset"] == "toy"


def test_synthesis_defaults_to_the_training_width(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out = cli(
        "train-global", toy_data, "--run", run, *TINY, "--load-width", "64", "--max-steps", "1"
    )
    assert code == 0, out
    test = toy_data / "test"
    args = ["synthesize", run, test / "label", "--inst", test / "inst", *TEST]
    assert cli(*args, "--out", tmp_path / "a")[0] == 0
    assert Image.open(tmp_path / "a" / "toy_test_00000.png").size == (64, 32)
    assert cli(*args, "--out", tmp_path / "b", "--width", "128")[0] == 0
    assert Image.open(tmp_path / "b" / "toy_test_00000.png").size == (128, 64)


def test_resume_with_only_data_and_run(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        run,
        *TINY,
        "--max-steps",
        "2",
        "--sample-every",
        "1",
        "--lr",
        "1e-3",
        "--log-every",
        "1",
    )
    assert code == 0, out
    code, out = cli("train-global", toy_data, "--run", run, "--max-steps", "3", "--quiet")
    assert code == 0, out  # no VGG question, no list of mismatches: the run's own config
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["optim"]["lr"] == 1e-3 and config["run"]["sample_every"] == 1
    assert (run / "samples" / "step-0000003.png").is_file()  # --sample-every 1 kept
    code, out = cli("train-global", toy_data, "--run", run, "--lr", "2e-3", "--quiet")
    assert code == 2 and "optim.lr: 0.001 != 0.002" in out


def test_the_schedule_may_grow(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    schedule = ["--epochs", "1", "--decay-epochs", "1", "--batch-size", "4", "--log-every", "1"]
    assert cli("train-global", toy_data, "--run", run, *TINY, *schedule)[0] == 0  # 4 steps
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == pytest.approx([2e-4, 2e-4, 2e-4, 2e-4])
    assert [r["epoch"] for r in log] == [1, 1, 2, 2]  # counted from 1
    code, out = cli("train-global", toy_data, "--run", run, "--epochs", "2", "--quiet")
    assert code == 2 or code == 0, out
    assert (
        code == 0
        and json.loads((run / "config.json").read_text())["config"]["optim"]["epochs"] == 2
    )
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert [r["lr"] for r in log[4:]] == pytest.approx([2e-4, 2e-4])  # epoch 3 of 2 + 1
    history = json.loads((run / "config.json").read_text())["history"]
    assert history[-1]["event"] == "resume" and history[-1]["extended"] == {"epochs": 2}
    code, out = cli("train-global", toy_data, "--run", run, "--epochs", "1", "--quiet")
    assert code == 2 and "optim.epochs: 2 != 1" in out


def vgg_file(path: Path, seed: int) -> Path:
    g = torch.Generator().manual_seed(seed)
    state = {
        k: torch.randn(v.shape, generator=g) * 0.05
        for k, v in Vgg19Features().features.state_dict().items()
    }
    save_file(state, str(path))
    return path


def test_vgg_weights_are_known_by_content(toy_data: Path, tmp_path: Path) -> None:
    first = vgg_file(tmp_path / "vgg.safetensors", 0)
    run = tmp_path / "run"
    with_vgg = [a for a in TINY if a != "--no-vgg-loss"]
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        run,
        *with_vgg,
        "--vgg-weights",
        first,
        "--max-steps",
        "1",
    )
    assert code == 0, out
    moved = tmp_path / "elsewhere" / "vgg19.safetensors"
    moved.parent.mkdir()
    shutil.move(first, moved)
    code, out = cli("train-global", toy_data, "--run", run, "--max-steps", "2", "--quiet")
    assert code == 2 and "does not exist (the run's file moved?)" in out
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        run,
        "--max-steps",
        "2",
        "--quiet",
        "--vgg-weights",
        moved,
    )
    assert code == 0, out  # the same file elsewhere: resumes
    other = vgg_file(tmp_path / "other.safetensors", 1)
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        run,
        "--max-steps",
        "3",
        "--quiet",
        "--vgg-weights",
        other,
    )
    assert code == 2 and "another file than the run was trained with" in out


def test_the_bar_fits_80_columns_and_shows_what_matters() -> None:
    from rich.progress import Progress

    from p2phd.cli.train import loss_texts, training_columns
    from p2phd.loss_terms import LossTerms

    losses = LossTerms(g_gan=0.52, g_feat=0.71, g_vgg=0.0, d_real=0.2, d_fake=0.25)
    totals, terms = loss_texts(losses, ("g_gan", "g_feat", "d_real", "d_fake"))
    assert totals == "G 1.230 D 0.225" and "vgg" not in terms  # terms that are off: hidden
    for width, wanted in (
        (80, ["1234/20000", "it/s", "G 1.230 D 0.225"]),
        (140, ["epoch 3/200", "gan 0.520 feat 0.710"]),
    ):
        buffer = io.StringIO()
        console = Console(file=buffer, width=width, force_terminal=True, color_system=None)
        with Progress(*training_columns(width), console=console, auto_refresh=False) as bar:
            task = bar.add_task(
                "global", total=20000, losses=totals, terms=terms, epoch="epoch 3/200"
            )
            bar.update(task, completed=1234)
            bar.refresh()
        last = buffer.getvalue().split("\r\x1b[2K")[-1].split("\n")[0]  # the final redraw
        assert len(last.rstrip()) <= width, last
        assert all(text in last for text in wanted), last
        assert "…" not in last, last


def test_samples_page_has_loss_curves_and_options(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out = cli(
        "train-global",
        toy_data,
        "--run",
        run,
        *TINY,
        "--max-steps",
        "3",
        "--log-every",
        "1",
        "--sample-every",
        "3",
    )
    assert code == 0, out
    page = (run / "samples" / "index.html").read_text()
    assert page.count("<svg") == 4 and "g_gan" in page and "g_vgg" not in page  # VGG is off
    assert "<summary>options</summary>" in page and "6 car" in page  # options, legend


def test_version() -> None:
    import p2phd

    assert cli("--version") == (0, f"p2phd {p2phd.__version__}\n")


# ---- choosing a checkpoint ----------------------------------------------------------------
def test_every_command_that_reads_a_run_takes_a_checkpoint(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    """`--checkpoint latest|STEP|epoch:N`, or a checkpoint folder where a run is expected;
    the fixture run has steps 1 and 2, both in epoch 1."""
    from p2phd.synth.run import Run

    test = toy_data / "test"

    def render(run: Path, out: str, *args: str) -> np.ndarray:
        code, text = cli(
            "synthesize", run, test / "label", "--inst", test / "inst",
            "--out", tmp_path / out, *TEST, *args,
        )  # fmt: skip
        assert code == 0, text
        return np.asarray(Image.open(tmp_path / out / "toy_test_00000.png"))

    latest, first = (
        render(tiny_feature_run, "latest"),
        render(tiny_feature_run, "one", "--checkpoint", "1"),
    )
    assert not np.array_equal(latest, first)  # one more step of training
    folder = tiny_feature_run / "checkpoints" / "step-0000001"
    np.testing.assert_array_equal(render(folder, "folder"), first)
    np.testing.assert_array_equal(
        render(tiny_feature_run, "epoch", "--checkpoint", "epoch:1"), latest
    )
    assert Run.open(tiny_feature_run, "1").step == 1 and Run.open(folder).root == tiny_feature_run

    report = json.loads(cli("inspect", tiny_feature_run, "--json")[1])
    listed = [(c["name"], c["step"], c["epoch"], c["latest"]) for c in report["checkpoints"]]
    assert listed == [("step-0000001", 1, 1, False), ("step-0000002", 2, 1, True)]
    assert all(c["bytes"] > 0 and c["saved"] for c in report["checkpoints"])
    assert (
        json.loads(cli("inspect", tiny_feature_run, "--checkpoint", "1", "--json")[1])["step"] == 1
    )

    for args, message in [
        (("--checkpoint", "7"), "no checkpoint at --checkpoint 7; it has steps 1, 2"),
        (("--checkpoint", "epoch:3"), "it has epochs 1"),
        (
            ("--checkpoint", "soon"),
            "--checkpoint soon: use latest, best (the best scored by --eval-every), a step number",
        ),
    ]:
        for command in (
            ("export", tiny_feature_run, "--out", tmp_path / "g.onnx", *args),
            ("encode-features", tiny_feature_run, toy_data, *TEST, *args),
            ("evaluate", tiny_feature_run, toy_data, "--out", tmp_path / "e", *TEST, *args),
        ):
            code, out = cli(*command)
            assert code == 2 and len(out.strip().splitlines()) == 1 and message in out, out
    code, out = cli("inspect", folder, "--checkpoint", "2")
    assert code == 2 and "is one checkpoint already" in out, out
