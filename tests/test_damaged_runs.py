"""A damaged run is refused where it is read, never used without a word (issue 23, point 4):
weights holding NaN, a step folder or weights file linking into another run, a LATEST that is
a folder, features holding NaN. Each is one line naming the file and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from helpers import TINY, cli, newest, one_line, synth

TEST = ["--device", "cpu", "--quiet"]


@pytest.fixture
def run(tiny_feature_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(tiny_feature_run, tmp_path / "run")
    return tmp_path / "run"


def poison(path: Path) -> str:
    """One weight of the file set to NaN, the file's size unchanged; the tensor's name."""
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    name = sorted(k for k, v in tensors.items() if v.is_floating_point() and v.numel())[0]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(path), metadata=metadata)
    return name


@pytest.mark.parametrize(
    ("file", "reader"),
    [
        ("G", ["synthesize", "--weights", "raw"]),
        ("G_ema", ["synthesize"]),
        ("E", ["encode-features", "--weights", "raw"]),
    ],
)
def test_weights_holding_nan_are_refused(
    run: Path, toy_data: Path, tmp_path: Path, file: str, reader: list[str]
) -> None:
    path = newest(run) / f"{file}.safetensors"
    name = poison(path)
    command, *options = reader
    read = (
        synth(run, toy_data, tmp_path / "o", *options)
        if command == "synthesize"
        else cli(command, run, toy_data, *TEST, *options)
    )
    one_line(
        *read,
        f"{path}: {name} holds NaN or inf",
        "delete this checkpoint folder to fall back to the previous one",
    )
    assert not list(tmp_path.glob("o/**/*.*"))  # no image, no page
    one_line(  # resuming from it is refused the same way
        *cli("train-global", toy_data, "--run", run, *TINY, "--instance-feat", "--max-steps", "3"),
        f"{name} holds NaN or inf",
    )


def test_a_step_folder_linking_into_another_run_is_refused(
    run: Path, tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    step = newest(run)
    shutil.rmtree(step)
    step.symlink_to(newest(tiny_feature_run))
    one_line(*synth(run, toy_data, tmp_path / "o"), f"{step}: links to", "copy the checkpoint in")


def test_a_weights_file_linking_elsewhere_is_refused(
    run: Path, tiny_feature_run: Path, toy_data: Path, tmp_path: Path
) -> None:
    weights = newest(run) / "G_ema.safetensors"
    weights.unlink()
    weights.symlink_to(newest(tiny_feature_run) / "G_ema.safetensors")
    one_line(
        *synth(run, toy_data, tmp_path / "o"), f"{weights}: links to", "outside its checkpoint"
    )


def test_a_latest_that_is_a_folder_is_refused(run: Path, toy_data: Path, tmp_path: Path) -> None:
    latest = run / "checkpoints" / "LATEST"
    latest.unlink()
    latest.mkdir()
    one_line(*synth(run, toy_data, tmp_path / "o"), f"{latest}: is a folder, not the file")


@pytest.mark.parametrize("which", ["features", "clusters"])
def test_bank_files_holding_nan_are_refused(
    run: Path, toy_data: Path, tmp_path: Path, which: str
) -> None:
    path = run / f"{which}.safetensors"
    name = poison(path)
    expected = f"{path}: {name} holds NaN or inf; write it again"
    if which == "features":
        one_line(*cli("cluster", run, "--k", "2", "--quiet"), expected)
    else:
        one_line(*synth(run, toy_data, tmp_path / "o"), expected)


def test_a_bank_tensor_of_the_wrong_shape_is_refused(run: Path) -> None:
    path = run / "features.safetensors"
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name] = torch.zeros(3)
    save_file(tensors, str(path))
    one_line(
        *cli("cluster", run, "--k", "2", "--quiet"),
        f"{name} is a torch.float32 tensor of shape (3,)",
    )


@pytest.mark.parametrize("which", ["features", "clusters"])
def test_bank_rows_of_another_width_than_the_encoders_are_refused(
    run: Path, toy_data: Path, tmp_path: Path, which: str
) -> None:
    """Corpus: a cluster file with 7 numbers per centre, where the encoder gives 3, ended in
    torch.cat's traceback inside synthesize; cluster took such features without a word."""
    path = run / f"{which}.safetensors"
    tensors = load_file(str(path))
    name = sorted(n for n in tensors if n.startswith("label_"))[0]
    tensors[name] = torch.zeros(2, 7)
    save_file(tensors, str(path))
    expected = f"{path}: {name} has shape (2, 7), but this run's encoder gives"
    if which == "features":
        one_line(*cli("cluster", run, "--k", "2", "--quiet"), expected, "4 numbers per row")
    else:
        one_line(*synth(run, toy_data, tmp_path / "o"), expected, "3 numbers per row")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"step": 10**23}, "step: 100000000000000000000000 is not a count 0..9007199254740992"),
        ({"optim": None}, "optim: missing; a trained checkpoint records its optimizers"),
    ],
    ids=["step-past-json", "no-optimizer"],
)
def test_a_state_out_of_bounds_or_without_its_optimizers_is_refused(
    run: Path, toy_data: Path, tmp_path: Path, edit: dict[str, object], expected: str
) -> None:
    """Without `optim`, resuming went on with a fresh Adam, silently; a step past what JSON
    keeps exact was taken as it came."""
    path = newest(run) / "state.json"
    state = json.loads(path.read_text())
    state.update(edit)
    path.write_text(json.dumps({k: v for k, v in state.items() if v is not None}))
    resume = ("train-global", toy_data, "--run", run, *TINY, "--instance-feat", "--max-steps", "3")
    one_line(*cli(*resume), str(path), expected)
    one_line(*synth(run, toy_data, tmp_path / "o"), str(path), expected)


def test_step_folders_without_their_state_are_refused_not_restarted(
    run: Path, toy_data: Path, tmp_path: Path
) -> None:
    """Saves are atomic, so a step folder without state.json is damage: the run restarted
    from step 0 over it, silently."""
    for state in (run / "checkpoints").glob("step-*/state.json"):
        state.unlink()
    expected = "a checkpoint folder without its state.json, and no complete one beside it"
    resume = ("train-global", toy_data, "--run", run, *TINY, "--instance-feat", "--max-steps", "3")
    one_line(*cli(*resume), f"{newest(run)}: {expected}")
    one_line(*synth(run, toy_data, tmp_path / "o"), expected)


@pytest.mark.parametrize("damage", ["no state", "link out", "no state, no LATEST"])
def test_a_damaged_newest_checkpoint_is_refused_not_passed_over(
    run: Path, toy_data: Path, tmp_path: Path, damage: str
) -> None:
    """Corpus: LATEST named a step folder without its state.json (or a link out of the run to
    a folder that is no checkpoint), and training resumed from the step before, rc 0: a
    silent rewind."""
    complete = newest(run)
    damaged = run / "checkpoints" / "step-9999999"
    if damage == "link out":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "notes.txt").write_text("not a checkpoint")
        damaged.symlink_to(elsewhere, target_is_directory=True)
        expected = f"{damaged}: links to {elsewhere}, outside"
    else:
        shutil.copytree(complete, damaged)
        (damaged / "state.json").unlink()
        expected = f"{damaged}: a checkpoint folder without its state.json; restore the file"
    latest = run / "checkpoints" / "LATEST"
    if damage == "no state, no LATEST":
        latest.unlink()
    else:
        latest.write_text(damaged.name + "\n")
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    resume = ("train-global", toy_data, "--run", run, *TINY, "--instance-feat", "--max-steps", "3")
    one_line(*cli(*resume), expected)
    one_line(*synth(run, toy_data, tmp_path / "o"), expected)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    shutil.rmtree(damaged) if not damaged.is_symlink() else damaged.unlink()
    code, out = synth(run, toy_data, tmp_path / "o")  # deleting it falls back, as the error says
    assert code == 0, out


def test_a_run_folder_is_p2phds_alone(
    run: Path, toy_data: Path, toy_source: Path, tmp_path: Path
) -> None:
    """A run was created inside the dataset, among a source's files, or inside another run's
    checkpoints, where its files mix with theirs."""
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    source = tmp_path / "photos"
    source.mkdir()
    (source / "a.png").write_bytes(b"")
    cases = [
        (toy_data, f"--run {toy_data}: holds the dataset"),
        (toy_data / "runs" / "r", f"--run {toy_data / 'runs' / 'r'}: is inside the dataset"),
        (source, "holds other files and is not a p2phd run (no config.json)"),
        (run / "checkpoints", f"is inside the run {run}; pass a folder outside it"),
        (run / "new", f"is inside the run {run}"),
    ]
    for folder, expected in cases:
        one_line(*cli("train-global", toy_data, "--run", folder, *TINY), expected)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == sorted(
        [*before, Path("photos"), Path("photos/a.png")]
    )
    assert not (toy_data / "runs").exists() and not (toy_data / "config.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = cli("train-global", toy_data, "--run", empty, *TINY, "--max-steps", "1")
    assert code == 0 and (empty / "config.json").is_file(), out  # an empty folder is fine


def test_outputs_never_land_on_what_the_command_reads(
    run: Path, toy_data: Path, tmp_path: Path
) -> None:
    """`export --out RUN/config.json` overwrote the run's config; `evaluate --out` inside
    the split wrote images among the photos it scores."""
    config = (run / "config.json").read_bytes()
    one_line(
        *cli("export", run, "--out", run / "config.json"),
        f"--out {run / 'config.json'}: is inside the run {run}",
    )
    assert (run / "config.json").read_bytes() == config
    photos = toy_data / "test" / "img"
    listed = sorted(photos.iterdir())
    one_line(
        *cli("evaluate", run, toy_data, "--out", photos, *TEST),
        f"--out {photos}: is inside the test split {toy_data / 'test'}",
    )
    one_line(
        *cli("evaluate", "--fake", tmp_path, "--real", photos, "--out", photos / "s", *TEST),
        f"is inside --real {photos}",
    )
    assert sorted(photos.iterdir()) == listed
