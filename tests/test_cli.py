"""The command line: help everywhere, exit codes, no logic of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TINY, cli

COMMANDS = [
    "toy",
    "prep",
    "train-global",
    "train-local",
    "train-joint",
    "encode-features",
    "cluster",
    "synthesize",
    "edit",
    "evaluate",
    "export",
    "import-reference",
    "inspect",
]


@pytest.mark.parametrize("command", [*COMMANDS, "weights fetch"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    code, out = cli(*command.split(), "--help")
    assert code == 0 and "Example: p2phd " + command in " ".join(out.split())


def test_exactly_the_built_commands_exist() -> None:
    import typer

    from p2phd.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert list(commands) == [*COMMANDS[:-6], "cluster-features", *COMMANDS[-6:], "weights"]
    assert list(commands["weights"].commands) == ["fetch", "list"]
    assert commands["cluster-features"].hidden  # listed once in --help
    assert commands["cluster-features"].help == commands["cluster"].help  # an alias
    assert cli("cluster-features", "--help")[0] == 0


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "p2phd", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "train-global" in result.stdout


def test_a_folder_named_p2phd_cannot_break_the_installed_script(tmp_path: Path) -> None:
    """From a clone's parent (a folder `p2phd/` in the working directory) the `p2phd` script,
    which `torchrun --no-python p2phd` runs, still works; `python -m p2phd` either works or
    says in one line what hides it (an editable install loses to the folder)."""
    (tmp_path / "p2phd" / "p2phd").mkdir(parents=True)  # a clone, without an install
    script = Path(sys.executable).parent / "p2phd"
    done = subprocess.run(
        [str(script), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "p2phd 0.1.0", done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "p2phd", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode == 0:  # a regular install wins over the folder
        assert done.stdout.strip() == "p2phd 0.1.0"
    else:
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and "torchrun --no-python p2phd" in done.stderr
        assert f"{tmp_path / 'p2phd'}: a folder named p2phd here hides" in done.stderr


def test_dry_run_prints_the_resolved_config(toy_data: Path, tmp_path: Path) -> None:
    code, out = cli(
        "train-global", toy_data, "--run", tmp_path / "r", *TINY, "--lr", "1e-3", "--dry-run"
    )
    assert code == 0
    cfg = json.loads(out)
    assert cfg["optim"]["lr"] == 1e-3 and cfg["net"]["ngf"] == 8 and cfg["net"]["label_nc"] == 8
    assert cfg["optim"]["beta1"] == 0.5 and cfg["loss"]["lambda_feat"] == 10.0  # defaults
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ngf", "0"], "--ngf 0: lies in 1..1024"),
        (["--label-nc", "3"], "--label-nc 3: "),
        (["--gan-mode", "wgan"], "--gan-mode: 'wgan' is not one of lsgan | bce | hinge"),
        (["--crop-size", "22"], "--crop-size: 22 is not a multiple of 4"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    toy_data: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    code, out = cli("train-global", toy_data, "--run", tmp_path / "r", *TINY, *args)
    assert code == 2 and message in out, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1


def test_missing_dataset_is_exit_2(tmp_path: Path) -> None:
    code, out = cli("train-global", tmp_path / "nowhere", "--run", tmp_path / "r", *TINY)
    assert code == 2 and "nowhere" in out and "p2phd prep" in out


def test_a_second_trainer_on_the_same_run_is_refused(toy_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    holder = subprocess.Popen(  # another process holding the run's lock, as a trainer does
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from p2phd.training.process import RunLock; lock = RunLock(Path(sys.argv[1])); "
            "lock.__enter__(); print('locked', flush=True); time.sleep(60)",
            str(run / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, out = cli("train-global", toy_data, "--run", run, *TINY, "--max-steps", "1")
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "another p2phd process is training" in out


def test_options_and_config_fields_cannot_drift() -> None:
    """Every config field is an option of the table or named as not one; every command
    offers exactly its rows, spelled as the table says."""
    import dataclasses

    import typer

    from p2phd.cli import app
    from p2phd.cli.flags import FLAGS, NOT_OPTIONS, SECTIONS, flags_for

    for section, cls in SECTIONS.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        rows = [f.field for f in FLAGS[section]]
        assert len(rows) == len(set(rows)) and set(rows) <= fields, section
        assert fields - set(rows) == NOT_OPTIONS.get(section, set()), section
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name, letter in (
        ("train-global", "G"),
        ("train-local", "L"),
        ("train-joint", "J"),
        ("import-reference", "I"),
    ):
        params = {p.name: p for p in commands[name].params}
        for _, flag in flags_for(letter):
            spelled = flag.spelled or "--" + flag.field.replace("_", "-")
            assert spelled in params[flag.field].opts, (name, flag.field)
        table = {flag.field for _, flag in flags_for(letter)}
        others = {
            "data",
            "run",
            "global_run",
            "dry_run",
            "quiet",
            "as_json",
            "ckpt_dir",
            "netg",
            "which_epoch",
            "clusters",
        }
        assert set(params) - others == table, name


def _help_at(columns: int, *command: str) -> str:
    from typer.testing import CliRunner

    from p2phd.cli import app

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", [*COMMANDS, "weights fetch"])
def test_help_at_80_columns_never_cuts_an_option_name(command: str) -> None:
    """Every option name (and its --no- form) appears whole, and no line is wider than 80
    (rich's tables cut `--activation-checkpointing` to `--activation-chec…`)."""
    import typer

    from p2phd.cli import app

    text = _help_at(80, *command.split())
    click_command = typer.main.get_command(app)
    for part in command.split():
        click_command = click_command.commands[part]  # type: ignore[attr-defined]
    words = set(text.replace(",", " ").split())
    for param in click_command.params:
        for name in [*param.opts, *param.secondary_opts]:
            if name.startswith("-"):
                assert name in words, f"{command}: {name} is cut in its help"
    assert "…" not in text and max(map(len, text.splitlines())) <= 80


def test_help_texts_say_what_they_mean() -> None:
    """Extras keep their brackets, import-reference's defaults are the reference's (it takes
    no data), and an option named in a help text is not broken at its hyphen."""
    assert "needs p2phd[coco])" in " ".join(_help_at(80, "prep").split())
    imported = " ".join(_help_at(80, "import-reference").split())
    assert "the data" not in imported and "the reference's --label_nc). [35]" in imported
    assert "--label-\n" not in _help_at(80, "train-global")
    listing = _help_at(80)
    commands = listing.split("Commands:", 1)[1]
    assert "..." not in commands and "Fetch the pretrained weights p2phd" in listing
