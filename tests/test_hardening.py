"""Hardening, round 3 (issue 24): outputs never overwrite inputs, and prep's workers die
with prep, which leaves no temporary folder behind on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import cli


def test_synthesize_refuses_an_output_folder_holding_its_inputs(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    import shutil

    labels = tmp_path / "labels"
    shutil.copytree(toy_data / "test" / "label", labels)
    before = {p.name: p.read_bytes() for p in labels.iterdir()}
    inst = toy_data / "test" / "inst"
    for out in (labels, labels / "inner", tmp_path):
        code, text = cli("synthesize", tiny_feature_run, labels, "--inst", inst, "--out", out)
        assert code == 2 and "--out" in text and "the input" in text, text
        assert len(text.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in labels.iterdir()} == before  # nothing overwritten
    code, text = cli("synthesize", tiny_feature_run, labels, "--inst", inst, "--out", inst)
    assert code == 2 and "the instance maps" in text, text


def test_prep_refuses_data_inside_its_source(toy_source: Path, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(toy_source, src)
    code, text = cli("prep", src, src / "data")
    assert code == 2 and "inside the source" in text, text
    assert not (src / "data").exists()


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough items that prep with 2 workers is still at work when it is signalled: one
    pair of files, linked under 300 names."""
    root = tmp_path_factory.mktemp("big") / "src"
    rng = np.random.default_rng(0)
    for folder in ("train_label", "train_img"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(rng.integers(0, 8, (512, 512), dtype=np.uint8)).save(root / "label.png")
    Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(root / "img.png")
    for i in range(300):
        os.link(root / "label.png", root / "train_label" / f"{i:04d}.png")
        os.link(root / "img.png", root / "train_img" / f"{i:04d}.png")
    return root


def marked(marker: str) -> list[int]:
    """Processes whose environment holds `marker` (prep, its fork server and workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker.encode() in environ:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_prep_workers_die_with_prep(tmp_path: Path, big_source: Path, sig: signal.Signals) -> None:
    src = big_source
    marker = f"P2PHD_TEST_MARK={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    prep = subprocess.Popen(
        [sys.executable, "-m", "p2phd", "prep", str(src), str(tmp_path / "data"),
         "--workers", "2", "--quiet", "--label-nc", "8"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(marked(marker)) < 4 and time.monotonic() < deadline:  # prep, server, 2 workers
        time.sleep(0.1)
    assert len(marked(marker)) >= 4, "prep's workers did not start"
    prep.send_signal(sig)
    prep.wait(timeout=60)
    deadline = time.monotonic() + 10
    while marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marked(marker) == [], "workers outlived prep"
    out, _ = prep.communicate(timeout=10)  # the pipe closes: no worker holds it
    assert not (tmp_path / "data").exists()
    if sig == signal.SIGTERM:
        assert prep.returncode == 143
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_refused_first_start_does_not_bind_the_run(toy_data: Path, tmp_path: Path) -> None:
    """Issue 23, point 5: settings of a run that saved no checkpoint are not binding."""
    from helpers import TINY

    run = tmp_path / "run"
    code, text = cli("train-global", toy_data, "--run", run, *TINY, "--lr", "inf")
    assert code == 2 and "--lr" in text, text
    code, text = cli("train-global", toy_data, "--run", run, *TINY, "--batch-size", "1000")
    assert code == 2 and "--batch-size 1000" in text, text
    assert (run / "config.json").is_file()  # the refused start wrote its settings
    code, text = cli("train-global", toy_data, "--run", run, *TINY, "--max-steps", "1")
    assert code == 0, text  # the corrected command, not "trained with other settings"
    import json

    config = json.loads((run / "config.json").read_text())
    assert config["config"]["optim"]["batch_size"] == 1
    assert [h["event"] for h in config["history"]] == ["start"]


@pytest.mark.parametrize("width", ["0", "4", "8"])
def test_sizes_the_nets_cannot_take_are_refused(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path, width: str
) -> None:
    """Issue 24, point 5: a bottleneck of 1 pixel was a torch traceback."""
    test = toy_data / "test"
    code, text = cli("synthesize", tiny_feature_run, test / "label", "--inst", test / "inst",
                     "--out", tmp_path / "o", "--width", width, "--device", "cpu")  # fmt: skip
    assert code == 2 and len(text.strip().splitlines()) == 1, text
    assert "at least" in text and "Traceback" not in text, text
    code, text = cli("encode-features", tiny_feature_run, toy_data, "--width", width)
    assert code == 2 and "at least" in text, text


def test_the_smallest_size_renders(tiny_feature_run: Path, toy_data: Path, tmp_path: Path) -> None:
    from p2phd.synth.run import Run

    net = Run.open(tiny_feature_run).net
    test = toy_data / "test"
    code, text = cli("synthesize", tiny_feature_run, test / "label", "--inst", test / "inst",
                     "--out", tmp_path / "o", "--width", str(2 * net.min_side),
                     "--device", "cpu", "--quiet")  # fmt: skip
    assert code == 0, text
