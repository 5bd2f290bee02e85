"""The README's demo command works as written (shortened by TOY_EPOCHS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_toy_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "P2PHD_VENV": str(Path(sys.executable).parents[1]), "TOY_EPOCHS": "1"}
    work = tmp_path / "demo"
    result = subprocess.run(
        ["bash", str(ROOT / "examples" / "toy_demo.sh"), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"synthesized test images: {work}/synth/" in result.stdout
    assert f"training samples:        {work}/run/samples/index.html" in result.stdout
    # the last lines are what to type next, and they work as printed
    typed = result.stdout.rstrip().splitlines()[-2:]
    assert typed[0].strip() == f"source {env['P2PHD_VENV']}/bin/activate"
    assert typed[1].strip().startswith(f"p2phd edit {work}/run ")
    clean = {**env, "PATH": "/usr/bin:/bin"}
    found = subprocess.run(["bash", "-c", f"{typed[0]} && type -P p2phd"], env=clean,
                           capture_output=True, text=True)  # fmt: skip
    assert found.stdout.strip() == f"{env['P2PHD_VENV']}/bin/p2phd", found.stderr
    assert all(Path(arg).exists() for arg in typed[1].split()[2:] if arg.startswith("/"))
    images = sorted((work / "synth").glob("*.png"))
    assert len(images) == 6 and Image.open(images[0]).size == (128, 64)
    assert (work / "synth" / "index.html").is_file()
    scores = json.loads((work / "eval" / "eval.json").read_text())  # the demo scores itself
    assert scores["segmentation_real"]["miou"] > 0.9 and 0 < scores["segmentation"]["miou"] < 1
    assert "mIoU (synthesized)" in result.stderr
    assert (work / "run" / "checkpoints" / "LATEST").read_text().strip() == "step-0000096"
    # scored as it trains (every epoch at TOY_EPOCHS 1), on the averaged weights
    passes = sorted(p.name for p in (work / "run" / "evals").iterdir())
    assert passes == ["step-0000048", "step-0000096"]
    best = (work / "run" / "checkpoints" / "BEST").read_text().strip()
    assert best in passes and "scored step 96" in result.stderr + result.stdout
    again = subprocess.run(
        ["bash", str(ROOT / "examples" / "toy_demo.sh"), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]  # a rerun finds everything done


@pytest.mark.slow
def test_toy_coarse_to_fine_chain(tmp_path: Path) -> None:
    env = {**os.environ, "P2PHD_VENV": str(Path(sys.executable).parents[1]), "TOY_EPOCHS": "1"}
    work = tmp_path / "c2f"
    result = subprocess.run(
        ["bash", str(ROOT / "examples" / "toy_coarse_to_fine.sh"), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((work / "local" / "config.json").read_text())["history"]
    assert [h["stage"] for h in history] == ["local", "joint"]
    config = json.loads((work / "local" / "config.json").read_text())["config"]
    assert config["net"]["n_local_enhancers"] == 1 and config["net"]["ngf"] == 8
    images = sorted((work / "synth").glob("*.png"))
    assert len(images) == 6 and Image.open(images[0]).size == (128, 64)


def test_every_recipe_parses() -> None:
    """bash reads an apostrophe inside "${VAR:?message}" as an opening quote; a recipe that
    does not parse fails before its first command."""
    for script in sorted((ROOT / "examples").glob("*.sh")):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr.strip()}"


def test_recipes_use_only_existing_options() -> None:
    """Every --option in the example scripts is one the named command accepts."""
    import typer

    from p2phd.cli import app

    commands = dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for name, cmd in list(commands.items()):  # groups: `weights fetch` is one command
        for sub, subcmd in getattr(cmd, "commands", {}).items():
            commands[f"{name} {sub}"] = subcmd
    accepted = {
        name: {o for p in cmd.params for o in p.opts + p.secondary_opts}
        for name, cmd in commands.items()
    }
    for script in sorted(p.name for p in (ROOT / "examples").glob("*.sh")):
        text = (ROOT / "examples" / script).read_text().replace("\\\n", " ")
        for line in text.splitlines():
            words = line.replace(";", " ").split()
            pairs = [" ".join(words[i : i + 2]) for i in range(len(words))]
            used = [(i, c) for i, c in enumerate(pairs) if c in accepted]
            used = used or [(i, w) for i, w in enumerate(words) if w in accepted]
            if not used or line.lstrip().startswith("#"):
                continue
            start, command = used[0]
            for word in words[start:]:
                if word in ("fi", "then", "else"):
                    break  # the command ended
                option = word.split("=")[0]
                if option.startswith("--"):
                    assert option in accepted[command], f"{script}: {command} has no {option}"


def test_the_benchmark_script_runs() -> None:
    """bench.py is not imported by the package: a change to the core must not break it."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench.py"),
            "--device",
            "cpu",
            "--cases",
            "infer512,train512,pool25,seg",
            "--iters",
            "1",
            "--warmup",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split(" | ")[0].strip("| ") for line in result.stdout.splitlines()[3:]]
    assert rows == ["infer512", "train512", "pool25", "seg"]


@pytest.mark.slow
def test_field_demo_learns_the_transform(tmp_path: Path) -> None:
    """examples/field_demo.sh as written: its held-out correlation coefficient is printed
    and at least 0.9, and synthesize's FITS keep the input's header in physical units."""
    fits = pytest.importorskip("astropy.io.fits")
    env = {**os.environ, "P2PHD_VENV": str(Path(sys.executable).parents[1])}
    work = tmp_path / "field_demo"
    result = subprocess.run(
        ["bash", str(ROOT / "examples" / "field_demo.sh"), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("held-out correlation"))
    cc = float(line.rsplit(" ", 1)[1])
    assert cc >= 0.9, result.stdout
    assert json.loads((work / "eval" / "eval.json").read_text())["pooled"]["cc"] == cc
    with fits.open(work / "synth" / "field_0000.fits") as hdus:
        header, values = hdus[0].header, hdus[0].data
    assert header["ORIGIN"] == "p2phd toy --kind field" and header["BUNIT"] == "a.u."
    history = "".join(str(card) for card in header["HISTORY"])  # long cards wrap
    assert f"run {work}/run step 120" in history
    assert values.shape == (64, 128) and 100 < abs(values).max() < 300  # a.u., not [-1, 1]
    # the README's notebook block for fields runs as written on the demo's folders
    section = (ROOT / "README.md").read_text().split("### Measurements", 1)[1].split("\n## ")[0]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("(1, 64, 128) ")
