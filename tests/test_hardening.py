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

from helpers import cli, marked_processes, one_line


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


def test_synthesize_refuses_an_output_folder_in_or_around_the_run(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    """Corpus: --out RUN, RUN/checkpoints or a step folder was taken, mixing images into the
    run's own files (a folder of PNGs in a step folder, which pruning deletes)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_feature_run, run)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    step = sorted((run / "checkpoints").glob("step-*"))[-1]
    labels = toy_data / "test" / "label"
    for out, says in [
        (run, "holds the run"),
        (run / "checkpoints", "is inside the run's checkpoints"),
        (step / "images", "is inside the run's checkpoints"),
        (tmp_path, "holds the run"),
    ]:
        code, text = cli("synthesize", run, labels, "--inst", toy_data / "test" / "inst",
                         "--out", out, "--device", "cpu")  # fmt: skip
        one_line(code, text, f"--out {out}: {says}")
        code, text = cli("evaluate", run, toy_data, "--out", out, "--device", "cpu")
        one_line(code, text, f"--out {out}: {says}")
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    code, text = cli("synthesize", run, labels, "--inst", toy_data / "test" / "inst", "--out",
                     run / "synth", "--device", "cpu", "--quiet")  # fmt: skip
    assert code == 0, text  # a folder of its own inside the run is the user's to choose


def test_options_that_do_not_apply_are_refused_not_ignored(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    """Corpus: each of these was taken and did nothing (or scored G on its training data)."""
    cases = [
        (("evaluate", tiny_feature_run, toy_data, "--label-nc", "5000", "--out", tmp_path / "e"),
         "--label-nc: gives the classes of --labels in folder mode"),
        (("toy", tmp_path / "toy", "--format", "fits"), "--format fits: for --kind field"),
        (("train-global", toy_data, "--run", tmp_path / "r", "--eval-every", "1",
          "--eval-split", "train"), "--eval-split: 'train' is not one of test | val"),
    ]  # fmt: skip
    for args, expected in cases:
        one_line(*cli(*args), expected)
    assert not any((tmp_path / name).exists() for name in ("e", "toy", "r"))


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
    return list(marked_processes(marker))


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
    out, err = prep.communicate(timeout=10)  # the pipe closes: no worker holds it
    assert not (tmp_path / "data").exists()
    if sig == signal.SIGTERM:
        assert prep.returncode == 143, err.decode()[-3000:]  # once 1 in CI: say why
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_prep_holds_stops_out_of_its_pools_own_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM raised inside ProcessPoolExecutor.submit or wait can leave the pool half-built
    or a future's lock held (prep once exited 1, not 143, in CI): a stop that arrives while
    the pool's code runs is raised when that code returns, in prep's own."""
    from concurrent.futures import ProcessPoolExecutor

    from p2phd.cli.app import Terminated, terminated_cleanly
    from p2phd.data.pool import outcomes

    assert sorted(outcomes([-2, -1, 0, 1], 2, abs)) == [(0, 2), (1, 1), (2, 0), (3, 1)]
    submitted = []
    submit = ProcessPoolExecutor.submit

    def signalled_submit(pool: ProcessPoolExecutor, *args: object) -> object:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the pool's own code runs
        submitted.append(args[1])
        return submit(pool, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ProcessPoolExecutor, "submit", signalled_submit)
    finished = []
    with pytest.raises(Terminated), terminated_cleanly():
        finished.extend(outcomes([-2, -1, 0, 1], 2, abs))
    assert submitted == [-2, -1, 0, 1] and finished == []  # every submit ran, then the stop


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


def folders(tmp_path: Path, label_value: int = 1) -> tuple[Path, Path, Path]:
    fake, real, labels = (tmp_path / n for n in ("fake", "real", "labels"))
    for folder in (fake, real, labels):
        folder.mkdir()
    Image.new("RGB", (32, 32), (90, 90, 90)).save(fake / "a.png")
    Image.new("RGB", (32, 32), (100, 90, 90)).save(real / "a.png")
    Image.fromarray(np.full((32, 32), label_value, np.uint8)).save(labels / "a.png")
    return fake, real, labels


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--seg-mean", "nan,nan,nan"], "give finite numbers"),
        (["--seg-std", "inf,1,1"], "give finite numbers"),
        (["--label-nc", "8", "LABEL200"], "label value 200"),
        (["NOREAL"], "give --real"),
    ],
)
def test_evaluate_refuses_options_that_make_scores_meaningless(
    tmp_path: Path, toy_source: Path, extra: list[str], expected: str
) -> None:
    """Issue 24, point 7: each of these exited 0 with scores."""
    fake, real, labels = folders(tmp_path, 200 if "LABEL200" in extra else 1)
    args = ["evaluate", "--fake", fake, "--labels", labels, "--out", tmp_path / "e",
            "--segmenter", toy_source / "segmenter.pt2"]  # fmt: skip
    if "NOREAL" not in extra:
        args += ["--real", real]
    code, text = cli(*args, *(e for e in extra if e not in ("LABEL200", "NOREAL")))
    assert code == 2 and expected in text and len(text.strip().splitlines()) == 1, text
    assert not (tmp_path / "e" / "eval.json").exists()


def test_a_segmenter_giving_nan_is_refused(tmp_path: Path) -> None:
    import torch

    class Nan(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], 4, x.shape[2], x.shape[3]), float("nan"))

    torch.jit.script(Nan()).save(str(tmp_path / "nan.pt"))
    fake, real, labels = folders(tmp_path)
    code, text = cli("evaluate", "--fake", fake, "--real", real, "--labels", labels, "--out",
                     tmp_path / "e", "--segmenter", tmp_path / "nan.pt")  # fmt: skip
    assert code == 2 and "NaN or infinite logits" in text, text


@pytest.mark.parametrize("kind", ["scenes", "field"])
def test_toy_sizes_are_bounded(tmp_path: Path, kind: str) -> None:
    code, text = cli("toy", tmp_path / "t", "--kind", kind, "--width", "100000")
    assert code == 2 and "100000" in text and len(text.strip().splitlines()) == 1, text
    assert not (tmp_path / "t").exists()


def test_a_style_map_is_read_with_a_size_bound(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    test = toy_data / "test"
    code, text = cli("synthesize", tiny_feature_run, test / "label", "--inst", test / "inst",
                     "--out", tmp_path / "o", "--style-map", "/dev/zero")  # fmt: skip
    assert code == 2 and "--style-map /dev/zero" in text and "larger than" in text, text


def test_vary_an_absent_instance_is_said(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    import json

    test = toy_data / "test"
    code, text = cli("synthesize", tiny_feature_run, test / "label", "--inst", test / "inst",
                     "--out", tmp_path / "o", "--variations", "2", "--vary", "instance:99999",
                     "--device", "cpu", "--json", "--quiet")  # fmt: skip
    assert code == 0, text
    notes = json.loads(text)["notes"]
    assert any("--vary instance:99999: 2 of 2 label maps have no such instance" in n for n in notes)


def test_a_style_map_naming_an_absent_id_is_said(
    tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    """A style map pinning an instance or a class no map holds rendered the default styles
    without a word, like the --vary case above."""
    import json

    test = toy_data / "test"
    style_map = tmp_path / "styles.json"
    style_map.write_text(json.dumps({"instances": {"99999": 0}, "classes": {"1": [0, 0, 0]}}))
    code, text = cli("synthesize", tiny_feature_run, test / "label", "--inst", test / "inst",
                     "--out", tmp_path / "o", "--style-map", style_map, "--device", "cpu",
                     "--json", "--quiet")  # fmt: skip
    assert code == 0, text
    notes = [n for n in json.loads(text)["notes"] if n.startswith("--style-map")]
    assert notes == [  # class 1 (road) is in every map: nothing to say of it
        "--style-map: 1 of its instances (99999) are in none of the maps, so their styles are "
        "unused; see p2phd inspect for the ids"
    ]


def test_a_truncated_exported_segmenter_is_one_line(
    tiny_feature_run: Path, toy_data: Path, toy_source: Path, tmp_path: Path
) -> None:
    """torch.export.load logged a 12-line traceback of its first reader before the error."""
    truncated = tmp_path / "seg.pt2"
    truncated.write_bytes((toy_source / "segmenter.pt2").read_bytes()[:3000])
    done = subprocess.run(  # a process of its own: torch's log handler writes to its stderr
        [sys.executable, "-m", "p2phd", "evaluate", str(tiny_feature_run), str(toy_data),
         "--out", str(tmp_path / "e"), "--segmenter", str(truncated), "--device", "cpu",
         "--quiet"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    text = done.stdout + done.stderr
    assert done.returncode == 2 and len(text.strip().splitlines()) == 1, text
    assert f"--segmenter {truncated}: not a TorchScript or torch.export file" in text


def test_things_that_are_not_files_are_named_for_what_they_are(
    tiny_feature_run: Path, toy_source: Path, tmp_path: Path
) -> None:
    """A link to /dev/zero was said to link to something that "does not exist", /dev/zero
    given as labels was "no such file", and `toy /dev/null` was "not empty"."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(toy_source, src)
    label = sorted((src / "train_label").iterdir())[0]
    label.unlink()
    label.symlink_to("/dev/zero")
    code, out = cli("prep", src, tmp_path / "data", "--quiet")
    assert code == 2 and f"{label}: is not a regular file or folder (a device" in out, out
    code, out = cli("synthesize", tiny_feature_run, "/dev/zero", "--out", tmp_path / "o")
    assert code == 2 and "/dev/zero: is not a regular file or folder" in out, out
    code, out = cli("toy", "/dev/null", "--quiet")
    assert code == 2 and "/dev/null: is not a folder; choose another folder" in out, out


STOP_DURING_EXPORT = """
import os, signal, sys, torch
MODE = sys.argv[1]
def stop(*args, **kwargs):
    if MODE == "INT":
        raise KeyboardInterrupt  # where Ctrl-C lands: deep inside the exporter
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()
torch.onnx.export = stop
sys.argv = ["p2phd", *sys.argv[2:]]
from p2phd.cli.app import main
main()
"""


@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_a_stopped_export_is_one_line_and_leaves_nothing(
    tiny_feature_run: Path, tmp_path: Path, sig: str
) -> None:
    """Ctrl-C or SIGTERM in the middle of a command's work is one line (exit 130, 143): no
    traceback, and no half-written output or temporary file."""
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", STOP_DURING_EXPORT, sig,
         "export", str(tiny_feature_run), "--out", str(out / "g.onnx")],
        capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    )  # fmt: skip
    assert done.returncode == 128 + getattr(signal, f"SIG{sig}"), done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "stopped" in done.stderr
    assert list(out.iterdir()) == []


def _alien_object(inst_path: Path, ident: int = 9001) -> None:
    """Put an object of class 9 (id 9001) into an instance map of the toy's 8 classes."""
    inst = np.asarray(Image.open(inst_path)).copy()
    inst[:4, :4] = ident
    Image.fromarray(inst.astype(np.uint16)).save(inst_path)


def test_instances_of_a_class_past_label_nc_are_refused(
    toy_data: Path, tiny_feature_run: Path, tmp_path: Path
) -> None:
    """An object of class 9 under 8 classes would index past the one-hot input and the style
    bank: synthesize and training refuse it, naming the file and the id. (prep takes any
    instance numbering: without instance features the ids only draw boundaries.)"""
    import shutil

    test = tmp_path / "test"
    shutil.copytree(toy_data / "test", test)
    _alien_object(test / "inst" / "toy_test_00000.png")
    code, out = cli(
        "synthesize", tiny_feature_run, test / "label", "--inst", test / "inst",
        "--out", tmp_path / "o", "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert code == 2 and "instance id 9001 belongs to class 9, past the 8 classes" in out, out

    data = tmp_path / "prepped"
    shutil.copytree(toy_data, data)
    _alien_object(next((data / "train" / "inst").iterdir()))
    code, out = cli(
        "train-global", data, "--run", tmp_path / "run", "--ngf", "8", "--ndf", "8",
        "--no-vgg-loss", "--device", "cpu", "--quiet", "--max-steps", "20",
    )  # fmt: skip
    assert code == 2 and "instance id 9001 belongs to class 9" in out, out


def test_a_dangling_link_in_the_source_is_named(toy_source: Path, tmp_path: Path) -> None:
    """A link to nothing was dropped without a word: the item is bad like any other."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(toy_source, src)
    photo = sorted((src / "train_img").iterdir())[0]
    photo.unlink()
    photo.symlink_to(tmp_path / "gone.png")
    code, out = cli("prep", src, tmp_path / "data", "--quiet")
    assert code == 2 and f"{photo}: links to {tmp_path / 'gone.png'}, which does not exist" in out
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("change", ["photo", "dataset.json"])
def test_a_photo_changed_after_prep_stops_training(
    toy_data: Path, tmp_path: Path, change: str
) -> None:
    import json
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_data, data)
    photo = sorted((data / "train" / "img").iterdir())[0]
    if change == "photo":
        Image.open(photo).resize((256, 128)).save(photo)
        said = f"{photo}: is 256x128, but dataset.json says 128x64"
    else:
        manifest = json.loads((data / "dataset.json").read_text())
        manifest["splits"]["train"]["items"][0]["width"] = 64
        (data / "dataset.json").write_text(json.dumps(manifest))
        said = "is 128x64, but dataset.json says 64x64"
    code, out = cli(
        "train-global", data, "--run", tmp_path / "run", "--ngf", "8", "--ndf", "8",
        "--no-vgg-loss", "--device", "cpu", "--quiet", "--max-steps", "20",
    )  # fmt: skip
    assert code == 2 and said in out and "prep the dataset again" in out, out
