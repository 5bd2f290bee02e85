"""synthesize: label maps -> images through the saved generator, batched, with checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from p2phd.data.io import read_id_map
from p2phd.ops import encode_input
from p2phd.synth.run import Run
from p2phd.visual import to_uint8

from helpers import TINY, cli


@pytest.fixture(scope="module")
def trained(toy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("synth") / "run"
    code, out = cli("train-global", toy_data, "--run", run, *TINY, "--max-steps", "3")
    assert code == 0, out
    return run


def test_images_equal_the_saved_generator_and_batches_do_not_matter(
    trained: Path, toy_data: Path, tmp_path: Path
) -> None:
    labels, inst = toy_data / "test" / "label", toy_data / "test" / "inst"
    code, out = cli(
        "synthesize",
        trained,
        labels,
        "--inst",
        inst,
        "--out",
        tmp_path / "a",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--quiet",
    )
    assert code == 0, out
    code, _ = cli(
        "synthesize",
        trained,
        labels,
        "--inst",
        inst,
        "--out",
        tmp_path / "b",
        "--batch-size",
        "1",
        "--device",
        "cpu",
        "--quiet",
        "--no-save-labels",
    )
    assert code == 0
    names = sorted(p.name for p in labels.iterdir())
    for name in names:
        a = np.asarray(Image.open(tmp_path / "a" / name))
        assert a.shape == (64, 128, 3)
        b = np.asarray(Image.open(tmp_path / "b" / name)).astype(int)
        assert np.abs(a.astype(int) - b).max() <= 1  # float rounding differs with the batch
    opened = Run.open(trained)
    G, ckpt = opened.generator(torch.device("cpu")), opened.checkpoint
    label = torch.from_numpy(read_id_map(labels / names[0]))[None]
    ids = torch.from_numpy(read_id_map(inst / names[0]))[None]
    with torch.no_grad():
        direct = to_uint8(G(encode_input(label, ids, label_nc=ckpt.config.net.label_nc))[0])
    np.testing.assert_array_equal(direct, np.asarray(Image.open(tmp_path / "b" / names[0])))
    page = (tmp_path / "a" / "index.html").read_text()
    assert all(f'src="{n}"' in page and f'src="labels/{n}"' in page for n in names)
    assert not (tmp_path / "b" / "labels").exists()  # --no-save-labels: no label maps


def test_json_summary_and_resize(trained: Path, toy_data: Path, tmp_path: Path) -> None:
    import json

    label = toy_data / "test" / "label"
    code, out = cli(
        "synthesize",
        trained,
        label,
        "--inst",
        toy_data / "test" / "inst",
        "--out",
        tmp_path / "o",
        "--width",
        "64",
        "--json",
        "--quiet",
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["count"] == 2 and Image.open(summary["images"][0]).size == (64, 32)


def test_missing_instance_maps_name_the_label(
    trained: Path, toy_data: Path, tmp_path: Path
) -> None:
    code, out = cli("synthesize", trained, toy_data / "test" / "label", "--out", tmp_path / "o")
    assert code == 2 and "toy_test_00000.png" in out and "--inst" in out


def test_bad_label_maps_are_refused(trained: Path, toy_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(toy_data / "test" / "inst" / "toy_test_00000.png", src / "x_inst.png")
    Image.fromarray(np.full((64, 128), 9, dtype=np.uint8)).save(src / "x.png")
    code, out = cli(
        "synthesize", trained, src / "x.png", "--inst", src / "x_inst.png", "--out", tmp_path / "o"
    )
    assert code == 2 and "x.png: label value 9 >= label_nc 8" in out  # one pair, any names
    shutil.move(src / "x_inst.png", tmp_path / "x.png")
    code, out = cli(
        "synthesize", trained, src / "x.png", "--inst", tmp_path / "x.png", "--out", tmp_path / "o"
    )
    assert code == 2 and "x.png: label value 9 >= label_nc 8" in out
    Image.fromarray(np.zeros((62, 128), dtype=np.uint8)).save(src / "odd.png")
    Image.fromarray(np.zeros((62, 128), dtype=np.uint8)).save(tmp_path / "odd.png")
    code, out = cli(
        "synthesize",
        trained,
        src / "odd.png",
        "--inst",
        tmp_path / "odd.png",
        "--out",
        tmp_path / "o",
    )  # resized to the training width by the one size rule, and said
    assert code == 0 and "another aspect ratio than the 128x64 training images" in out, out
    assert "odd.png 128x62 -> 128x64" in out
    assert Image.open(tmp_path / "o" / "odd.png").size == (128, 64)


def test_not_a_run_is_refused(tmp_path: Path, toy_data: Path) -> None:
    code, out = cli("synthesize", tmp_path, toy_data / "test" / "label", "--out", tmp_path / "o")
    assert code == 2 and "not a p2phd run" in out


def test_the_page_shows_the_label_maps_and_earlier_images_are_reported(
    trained: Path, toy_data: Path, tmp_path: Path
) -> None:
    labels, inst, out = toy_data / "test" / "label", toy_data / "test" / "inst", tmp_path / "o"
    (out / "labels").mkdir(parents=True)
    old = np.zeros((8, 8, 3), np.uint8)
    for name in ("old.png", "labels/old.png", "toy_test_00000.png", "notes.txt"):
        Image.fromarray(old).save(out / name, format="PNG")
    args = ("synthesize", trained, labels, "--inst", inst, "--out", out, "--device", "cpu")
    code, text = cli(*args)
    assert code == 0, text
    assert "2 images in" in text and "from an earlier run and not on the page" in text
    assert "(first: labels/old.png)" in text
    page = (out / "index.html").read_text()
    assert 'src="labels/toy_test_00000.png"' in page and "old.png" not in page
    shown = np.asarray(Image.open(out / "labels" / "toy_test_00000.png"))
    assert shown.shape == (64, 128, 3) and len(np.unique(shown.reshape(-1, 3), axis=0)) > 2
    assert (out / "old.png").exists()  # reported, never deleted

    code, text = cli(*args, "--json", "--no-save-labels", "--out", tmp_path / "p")
    assert code == 0, text
    assert not (tmp_path / "p" / "labels").exists()
    assert "labels/" not in (tmp_path / "p" / "index.html").read_text()
