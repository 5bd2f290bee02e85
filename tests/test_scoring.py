"""Scoring during training (issue 21): --eval-every scores the held-out split through the
evaluate core, BEST follows the chosen metric (never pruned, kept on resume), and a kill in
the middle of a pass leaves nothing half-written and is scored on resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TINY, cli, one_line

ROOT = Path(__file__).resolve().parents[1]


def train(data: Path, run: Path, *extra: object) -> tuple[int, str]:
    return cli("train-global", data, "--run", run, *TINY, *extra)


def evals(run: Path) -> list[dict]:
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in records if any(k.startswith("eval_") for k in r)]


@pytest.fixture(scope="module")
def scored_run(toy_source: Path, toy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 epochs of 4 steps, scored after each with the toy's oracle segmenter."""
    run = tmp_path_factory.mktemp("scored") / "run"
    code, out = train(toy_data, run, "--batch-size", "2", "--epochs", "2", "--decay-epochs",
                      "0", "--eval-every", "1", "--segmenter", toy_source / "segmenter.pt2",
                      "--keep-last", "1")  # fmt: skip
    assert code == 0, out
    return run


def test_each_scored_epoch_has_its_pass_its_log_line_and_best(scored_run: Path) -> None:
    records = evals(scored_run)
    assert [r["step"] for r in records] == [4, 8]
    assert all({"eval_psnr", "eval_miou"} <= set(r) for r in records)
    for step in (4, 8):
        folder = scored_run / "evals" / f"step-{step:07d}"
        scores = json.loads((folder / "scores.json").read_text())
        assert scores["weights"] == "ema" and scores["scores"]["miou"] is not None
        assert (folder / "eval.json").is_file() and (folder / "index.html").is_file()
    best = max(records, key=lambda r: r["eval_miou"])["step"]  # ties: the first stays
    name = (scored_run / "checkpoints" / "BEST").read_text().strip()
    assert name == f"step-{best:07d}"
    assert (scored_run / "checkpoints" / name / "state.json").is_file()  # never pruned
    page = (scored_run / "samples" / "index.html").read_text()
    assert "scores on the held-out split" in page and "eval_miou" in page


def records_best(records: list[dict]) -> float:
    return max(r["eval_miou"] for r in records)


def test_synthesize_takes_the_best_checkpoint(scored_run: Path, toy_data: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    test = toy_data / "test"
    for run, extra in ((f"{scored_run}@best", []), (scored_run, ["--checkpoint", "best"])):
        code, out = cli("synthesize", run, test / "label", "--inst", test / "inst", "--out",
                        tmp_path / "o", "--device", "cpu", "--json", "--quiet", *extra)  # fmt: skip
        assert code == 0, out
    code, out = cli("inspect", f"{scored_run}@best", "--json")
    assert code == 0 and json.loads(out)["checkpoint"].endswith(
        (scored_run / "checkpoints" / "BEST").read_text().strip()
    )


def test_best_survives_resume(scored_run: Path, toy_data: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(scored_run, run)
    before = (run / "checkpoints" / "BEST").read_text()
    best_miou = records_best(evals(run))
    code, out = train(toy_data, run, "--batch-size", "2", "--epochs", "3", "--decay-epochs",
                      "0", "--eval-every", "1", "--keep-last", "1",
                      "--segmenter", toy_data.parent.parent / "none")  # fmt: skip
    assert code == 2 and "--segmenter" in out  # a missing file is named before any step
    segmenter = json.loads((run / "config.json").read_text())["config"]["run"]["segmenter"]
    code, out = train(toy_data, run, "--batch-size", "2", "--epochs", "3", "--decay-epochs",
                      "0", "--eval-every", "1", "--keep-last", "1",
                      "--segmenter", segmenter)  # fmt: skip
    assert code == 0, out
    third = evals(run)[-1]
    assert third["step"] == 12
    now = (run / "checkpoints" / "BEST").read_text()
    assert now == (f"step-{12:07d}\n" if third["eval_miou"] > best_miou else before)


def test_metric_and_split_are_checked_before_training(toy_data: Path, tmp_path: Path) -> None:
    code, out = train(toy_data, tmp_path / "a", "--eval-every", "1", "--best-metric", "miou")
    assert code == 2 and "--best-metric miou" in out and "--segmenter" in out, out
    code, out = train(toy_data, tmp_path / "b", "--eval-every", "1", "--eval-split", "val")
    assert code == 2 and "--val-fraction" in out, out
    assert not (tmp_path / "a" / "checkpoints").exists()


@pytest.mark.parametrize("option", ["--segmenter", "--inception"])
def test_a_scorer_file_that_cannot_load_is_refused_before_training(
    toy_data: Path, tmp_path: Path, option: str
) -> None:
    """Corpus: a damaged --segmenter (or --inception) file was refused only after the first
    epoch, its training lost, an empty evals/ left in the run."""
    bad = tmp_path / ("bad.pt2" if option == "--segmenter" else "bad.pth")
    bad.write_bytes(b"not a model file" * 64)
    run = tmp_path / "run"
    code, out = train(toy_data, run, "--batch-size", "8", "--epochs", "1", "--decay-epochs",
                      "0", "--eval-every", "1", option, bad)  # fmt: skip
    one_line(code, out, f"{option} {bad}:")
    assert not (run / "checkpoints").exists() and not (run / "evals").exists()


def test_prep_holds_out_a_val_split(toy_source: Path, tmp_path: Path) -> None:
    code, out = cli("prep", toy_source, tmp_path / "data", "--val-fraction", "0.25", "--json",
                    "--quiet", "--multiple", "16")  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["counts"] == {"train": 6, "val": 2, "test": 2}
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    val = {i["key"] for i in manifest["splits"]["val"]["items"]}
    train_keys = {i["key"] for i in manifest["splits"]["train"]["items"]}
    assert len(val) == 2 and not val & train_keys
    assert sorted(p.stem for p in (tmp_path / "data" / "val" / "img").iterdir()) == sorted(val)
    code, again = cli("prep", toy_source, tmp_path / "again", "--val-fraction", "0.25", "--json",
                      "--quiet", "--multiple", "16")  # fmt: skip
    manifest2 = json.loads((tmp_path / "again" / "dataset.json").read_text())
    assert {i["key"] for i in manifest2["splits"]["val"]["items"]} == val  # the same every time


KILLER = """
import os, signal, sys
import p2phd.training.scoring as scoring
real = scoring.evaluate_run
def killed(run, data, out, **kwargs):
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "images" / "half.png").write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
scoring.evaluate_run = killed
from p2phd.cli import main
sys.argv = ["p2phd", *sys.argv[1:]]
main()
"""


def test_a_kill_during_a_pass_leaves_nothing_half_written(toy_data: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    run = tmp_path / "run"
    args = ["train-global", str(toy_data), "--run", str(run), *TINY, "--batch-size", "2",
            "--epochs", "1", "--decay-epochs", "1", "--eval-every", "1"]  # fmt: skip
    killed = subprocess.run([sys.executable, "-c", KILLER, *args], capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    evals_dir = run / "evals"
    assert [p.name for p in evals_dir.iterdir()] and all(
        p.name.startswith(".") for p in evals_dir.iterdir()
    )  # only the temporary folder of the pass
    assert (run / "checkpoints" / "step-0000004" / "state.json").is_file()
    env = {**os.environ}
    done = subprocess.run([sys.executable, "-m", "p2phd", *args], capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in evals_dir.iterdir()) == ["step-0000004", "step-0000008"]
    assert [r["step"] for r in evals(run)] == [4, 8]  # the killed pass was scored on resume


def test_tensorboard_events_hold_losses_scores_and_samples(
    toy_source: Path, toy_data: Path, tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    code, out = train(toy_data, run, "--batch-size", "2", "--epochs", "1", "--decay-epochs",
                      "0", "--eval-every", "1", "--tensorboard", "--log-every", "2",
                      "--sample-every", "4")  # fmt: skip
    assert code == 0, out
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert [e.step for e in events.Scalars("loss/g_gan")] == [2, 4]
    assert [e.step for e in events.Scalars("eval/psnr")] == [4]
    assert events.Scalars("eval/psnr")[0].value == pytest.approx(evals(run)[0]["eval_psnr"])
    assert "samples" in tags["images"]


def test_tensorboard_missing_is_one_line(
    toy_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real(name, *a),
    )
    code, out = train(toy_data, tmp_path / "run", "--tensorboard", "--max-steps", "1")
    assert code == 2 and "pip install 'p2phd[tensorboard]'" in out, out
    assert len(out.strip().splitlines()) == 1


def test_a_feature_run_is_scored_with_encoded_styles(
    toy_source: Path, toy_data: Path, tmp_path: Path
) -> None:
    """A run with instance features has no style bank while it trains: the pass takes the
    styles E encodes from the split's photos (the toy demo's case)."""
    run = tmp_path / "run"
    code, out = train(toy_data, run, "--instance-feat", "--batch-size", "2", "--epochs", "1",
                      "--decay-epochs", "0", "--eval-every", "1",
                      "--segmenter", toy_source / "segmenter.pt2")  # fmt: skip
    assert code == 0, out
    assert [r["step"] for r in evals(run)] == [4] and "eval_miou" in evals(run)[0]
