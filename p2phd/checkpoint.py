"""The run directory: its layout, atomic checkpoint writes, strict loading.

The only module that knows file names and formats. Tensors go in safetensors, everything
else in JSON; nothing is pickled. A checkpoint is complete or absent: it is written into a
temporary folder, flushed, renamed to `step-NNNNNNN`, and only then does `LATEST` name it.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

import p2phd
from p2phd.atomic import atomic_dir, save_tensors, write_json_atomic, write_text
from p2phd.config import Stage, TrainConfig
from p2phd.errors import CheckpointError, ConfigError
from p2phd.jsonfile import SchemaError, decode, read_json
from p2phd.nets.discriminator import build_discriminator
from p2phd.nets.encoder import build_encoder
from p2phd.nets.generator import build_generator
from p2phd.weights import key_mismatches

FORMAT_VERSION = 1
MAX_COUNT = 2**53  # steps and epochs: the largest integer a JSON reader keeps exact
STEP_NAME = re.compile(r"step-\d{7,}")
KEEP = "KEEP"  # in a milestone checkpoint folder: pruning leaves it
STATE_MAX_BYTES = 64 * 1024 * 1024  # state.json and config.json: kilobytes in practice


@dataclass(frozen=True, slots=True)
class RunDir:
    """Paths of one training run (docs/design.md §3)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "LATEST"

    @property
    def best(self) -> Path:
        """Names the checkpoint with the best score of --eval-every (training/scoring.py)."""
        return self.checkpoints / "BEST"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def step_dir(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:07d}"

    def check_output(self, out: Path, option: str) -> None:
        """Refuse an output folder that is the run, holds it, or lies in its checkpoints
        (pruning would delete it, and a step folder's files are the checkpoint). A folder of
        its own inside the run, as evaluate's `eval-test/` and the `evals/` passes, is fine."""
        target = Path(os.path.abspath(out)).resolve()
        root = Path(os.path.abspath(self.root)).resolve()
        if root.is_relative_to(target):
            raise ConfigError(f"{option} {out}: holds the run {self.root}; pass a new folder")
        if target.is_relative_to(root / "checkpoints"):
            raise ConfigError(
                f"{option} {out}: is inside the run's checkpoints {self.checkpoints}; pass a "
                "folder outside them"
            )


@dataclass(frozen=True, slots=True)
class OptimGroups:
    """The optimisers' hyperparameters and parameter names (`training.state`), per net."""

    G: dict[str, Any]
    D: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CheckpointState:
    """A checkpoint's state.json, typed: read through the one strict JSON decoder, so a
    damaged or foreign file is one line naming the field."""

    format_version: int
    step: int
    stage: Stage
    files: dict[str, int]  # file name -> the size written: a damaged file is caught
    epoch: int = 0  # counted from 0
    lr: float = 0.0
    nonfinite_skipped: int = 0
    optim: OptimGroups | None = None  # absent in imported checkpoints: weights only
    train_size: tuple[int, int] | None = None  # (width, height) when the images had one size
    imported: dict[str, Any] | None = None  # where an imported checkpoint came from
    saved_at: float = 0.0

    def __post_init__(self) -> None:
        for name in ("step", "epoch", "nonfinite_skipped"):
            if not 0 <= getattr(self, name) <= MAX_COUNT:
                raise ConfigError(f"{name}: {getattr(self, name)} is not a count 0..{MAX_COUNT}")
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise ConfigError(f"lr: {self.lr} is not a learning rate")
        if self.optim is None and self.imported is None:  # resuming would reset Adam silently
            raise ConfigError("optim: missing; a trained checkpoint records its optimizers")
        if self.train_size is not None and min(self.train_size) < 1:
            raise ConfigError(f"train_size: {list(self.train_size)} is not a size")
        bad = next((k for k, v in self.files.items() if v < 0), None)
        if bad is not None:
            raise ConfigError(f"files.{bad}: {self.files[bad]} is not a size")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A complete checkpoint folder: its state.json, config and tensor files."""

    path: Path
    state: CheckpointState
    config: TrainConfig

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def milestone(self) -> bool:
        """Kept by --keep-every: pruning leaves it."""
        return (self.path / KEEP).exists()

    def has_average(self, role: str) -> bool:
        """Whether the checkpoint holds the moving average of net `role` (`G_ema`)."""
        return f"{role}_ema.safetensors" in self.state.files

    def tensors(self, name: str) -> dict[str, Tensor]:
        """Load `<name>.safetensors`, checking it is the size state.json recorded, a file of
        this folder (not a link elsewhere) and finite: weights that would render NaN, or an
        optimiser that would train on it, are refused as training refuses to save them."""
        path = self.path / f"{name}.safetensors"
        if path.is_symlink() and path.resolve().parent != self.path.resolve():
            raise CheckpointError(
                f"{path}: links to {path.resolve()}, outside its checkpoint; a checkpoint holds "
                "its own files: copy the file in, or delete this checkpoint folder"
            )
        expected = self.state.files.get(path.name)
        if not path.is_file():
            if self.state.imported is not None:
                raise CheckpointError(
                    f"{path}: missing: the run was imported without the reference's "
                    f"net_{name}.pth; import its checkpoint folder with that file to train"
                )
            raise CheckpointError(f"{path}: missing; the checkpoint is incomplete")
        if expected is not None and path.stat().st_size != expected:
            raise CheckpointError(
                f"{path}: {path.stat().st_size} bytes, but {expected} were written; "
                "the file is damaged: delete this checkpoint folder to fall back to the previous"
            )
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(
                f"{path}: unreadable ({_first_line(exc)}); delete this "
                "checkpoint folder to fall back to the previous one"
            ) from None
        for key, value in tensors.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise CheckpointError(
                    f"{path}: {key} holds NaN or inf; the weights are damaged: delete this "
                    "checkpoint folder to fall back to the previous one"
                )
        return tensors


def config_record(cfg: TrainConfig, history: list[dict[str, Any]]) -> dict[str, Any]:
    """What config.json holds: the resolved config, versions and the stage history."""
    return {
        "p2phd_version": p2phd.__version__,
        "torch_version": torch.__version__,
        "config": cfg.to_dict(),
        "history": history,
    }


def read_config_record(path: Path) -> tuple[TrainConfig, list[dict[str, Any]]]:
    """Parse a config.json written by `config_record`."""
    try:
        record = read_json(path, max_bytes=STATE_MAX_BYTES)
        history = record.get("history", []) if isinstance(record, dict) else None
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise ValueError("expected an object with 'config' and a 'history' of objects")
        return TrainConfig.from_dict(record["config"]), list(record.get("history", []))
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(
            f"{path}: not a p2phd run config ({_first_line(exc)}); "
            "pass the folder of a p2phd run, or train a new one"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def save_checkpoint(
    run: RunDir,
    step: int,
    tensors: dict[str, dict[str, Tensor]],
    state: dict[str, Any],
    record: dict[str, Any],
    *,
    keep_last: int,
    milestone: bool = False,
) -> Path:
    """Write `step-N` with `<name>.safetensors` per entry of `tensors`, state.json and
    config.json, atomically; then point LATEST at it and prune to the last `keep_last`. A
    `milestone` (`--keep-every`) holds a KEEP file and is never pruned."""
    final = run.step_dir(step)
    for name, tensor_dict in tensors.items():
        _check_finite(name, tensor_dict)
    with atomic_dir(final) as tmp:
        sizes = {}
        for name, tensor_dict in tensors.items():
            path = tmp / f"{name}.safetensors"
            save_tensors(path, tensor_dict, _metadata(name, record))
            sizes[path.name] = path.stat().st_size
        full_state = {
            **state,
            "format_version": FORMAT_VERSION,
            "step": step,
            "files": sizes,
            "saved_at": time.time(),
        }
        write_json_atomic(tmp / "state.json", full_state)
        write_json_atomic(tmp / "config.json", record)
        if milestone:
            write_text(tmp / KEEP, "kept by --keep-every\n")
    write_text(run.latest, final.name + "\n")
    _prune(run, keep_last)
    return final


def _metadata(name: str, record: dict[str, Any]) -> dict[str, str]:
    return {
        "p2phd_version": p2phd.__version__,
        "format_version": str(FORMAT_VERSION),
        "role": name,
        "stage": str(record["config"]["stage"]),
    }


def _check_finite(name: str, tensors: dict[str, Tensor]) -> None:
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"{name}.{key} is not finite; refusing to save a poisoned "
                "checkpoint (lower --lr, or check the data)"
            )


def _complete_steps(run: RunDir) -> list[Path]:
    if not run.checkpoints.is_dir():
        return []
    return sorted(
        p
        for p in run.checkpoints.iterdir()
        if STEP_NAME.fullmatch(p.name) and (p / "state.json").is_file()
    )


def _prune(run: RunDir, keep_last: int) -> None:
    best = read_pointer(run.best)
    for old in _complete_steps(run)[:-keep_last]:
        if not (old / KEEP).exists() and old.name != best:
            shutil.rmtree(old, ignore_errors=True)


def read_pointer(pointer: Path) -> str | None:
    """The checkpoint folder name a pointer file (LATEST, BEST) holds, if it holds one."""
    try:
        name = pointer.read_text().strip()
    except (OSError, ValueError):
        return None
    return name if STEP_NAME.fullmatch(name) else None


def write_best(run: RunDir, step: int) -> None:
    """Point BEST at the checkpoint of `step` (atomically; it is never pruned)."""
    write_text(run.best, run.step_dir(step).name + "\n")


def best_checkpoint(run: RunDir) -> Checkpoint:
    """The checkpoint BEST names, or an error saying how to get one."""
    name = read_pointer(run.best)
    if name is None or not (run.checkpoints / name / "state.json").is_file():
        raise CheckpointError(
            f"{run.root}: has no BEST checkpoint; train with --eval-every N to score "
            "checkpoints as they are saved"
        )
    return open_checkpoint(run.checkpoints / name)


def clean_partial(run: RunDir) -> None:
    """Remove temporary folders left by a crash during a save (we hold the run's lock)."""
    if run.checkpoints.is_dir():
        for tmp in run.checkpoints.glob(".step-*"):
            shutil.rmtree(tmp, ignore_errors=True)


def open_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint folder's state.json and config.json. The folder is its run's own: a
    step folder that links into another run is refused, not followed."""
    if Path(path).is_symlink() and path.resolve().parent != path.parent.resolve():
        raise CheckpointError(
            f"{path}: links to {path.resolve()}, outside {path.parent}; a run's checkpoints "
            "are its own folders: copy the checkpoint in, or delete the link"
        )
    where = path / "state.json"
    fix = "delete this checkpoint folder to fall back to the previous one"
    if not where.is_file():  # saves are atomic: a step folder without its state is damage
        raise CheckpointError(
            f"{path}: a checkpoint folder without its state.json; restore the file, or {fix}"
        )
    try:
        data = read_json(where, max_bytes=STATE_MAX_BYTES)
        version = data.get("format_version") if isinstance(data, dict) else None
        if isinstance(version, int) and version != FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint format {version} is not supported by p2phd {p2phd.__version__}"
            )
        state = decode(CheckpointState, data)
    except (OSError, SchemaError) as exc:
        raise CheckpointError(f"{where}: {_first_line(exc)}; {fix}") from None
    config, _ = read_config_record(path / "config.json")
    return Checkpoint(path, state, config)


def latest_checkpoint(run: RunDir) -> Checkpoint | None:
    """The checkpoint LATEST names; without a LATEST (or if its folder is gone), the newest
    complete one. LATEST names a folder directly inside checkpoints/, never a path elsewhere.
    A damaged step folder that LATEST names, or that is newer than the newest complete one,
    is refused: passing over it would quietly rewind the run."""
    if run.latest.exists() and not run.latest.is_file():
        raise CheckpointError(
            f"{run.latest}: is a folder, not the file naming the newest checkpoint; delete it "
            "(the newest complete checkpoint is then used)"
        )
    steps = _complete_steps(run)
    if run.latest.is_file():
        try:
            name = run.latest.read_text().strip()
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{run.latest}: unreadable ({_first_line(exc)})") from None
        if not STEP_NAME.fullmatch(name):
            raise CheckpointError(
                f"{run.latest}: names {name[:60]!r}, not a checkpoint folder step-NNNNNNN of "
                f"this run; write the newest one's name into it, or delete it"
            )
        named = run.checkpoints / name
        # the folder LATEST names is used, or refused by its own error; without a complete
        # checkpoint the error below says to start anew; one that is gone was deleted to fall
        # back, so the newest complete one is used
        if named.is_symlink() or (named.exists() and steps):
            return open_checkpoint(named)
    folders = sorted(run.checkpoints.iterdir()) if run.checkpoints.is_dir() else []
    newest = steps[-1].name if steps else ""
    # saves are atomic: a step folder without its state is damage
    damaged = [p for p in folders if STEP_NAME.fullmatch(p.name) and p.name > newest]
    if damaged and steps:  # its own error: a link out of the run, a missing state
        return open_checkpoint(damaged[-1])
    if damaged:
        raise CheckpointError(
            f"{damaged[-1]}: a checkpoint folder without its state.json, and no complete one "
            "beside it; restore the file, or delete the folder to start the run anew"
        )
    return open_checkpoint(steps[-1]) if steps else None


def require_checkpoint(run_path: Path) -> Checkpoint:
    """The newest checkpoint of a run folder, or an error saying how to get one."""
    run = RunDir(Path(run_path))
    if not run.config.is_file():
        raise CheckpointError(
            f"{run.root}: not a p2phd run (no config.json); "
            "pass the folder given to --run when training"
        )
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        raise CheckpointError(f"{run.root}: has no checkpoint yet; train it first")
    return ckpt


CHECKPOINT_CHOICES = (
    "latest, best (the best scored by --eval-every), a step number (1200) or epoch:N (the "
    "last saved in epoch N)"
)


def complete_checkpoints(run: RunDir) -> list[Checkpoint]:
    """Every complete checkpoint of a run, oldest first (each opened: a damaged one is an
    error naming it)."""
    return [open_checkpoint(path) for path in _complete_steps(run)]


def select_checkpoint(run_path: Path, which: str = "latest") -> Checkpoint:
    """The checkpoint `which` names in a run folder: `latest` (what LATEST names), a step
    number, or `epoch:N`, the newest checkpoint saved during epoch N (counted from 1, as
    the log and inspect count them)."""
    epoch = which.removeprefix("epoch:") if which.startswith("epoch:") else None
    named = which in ("latest", "best")
    if not named and not which.isdigit() and not (epoch and epoch.isdigit()):
        raise ConfigError(f"--checkpoint {which}: use {CHECKPOINT_CHOICES}")
    latest = require_checkpoint(run_path)
    if which == "latest":
        return latest
    if which == "best":
        return best_checkpoint(RunDir(Path(run_path)))
    run = RunDir(Path(run_path))
    if which.isdigit():
        path = run.step_dir(int(which))
        if (path / "state.json").is_file():
            return open_checkpoint(path)
        found = [ckpt.step for ckpt in complete_checkpoints(run)]
    else:
        assert epoch is not None
        opened = complete_checkpoints(run)
        chosen = [c for c in opened if c.state.epoch + 1 == int(epoch)]
        if chosen:
            return chosen[-1]
        found = [c.state.epoch + 1 for c in opened]
    what = "steps" if which.isdigit() else "epochs"
    have = ", ".join(str(v) for v in sorted(set(found))) or "none"
    raise CheckpointError(
        f"{run.root}: no checkpoint at --checkpoint {which}; it has {what} {have} "
        f"(p2phd inspect {run.root} lists them)"
    )


def load_strict(module: nn.Module, tensors: dict[str, Tensor], where: str) -> None:
    """`load_state_dict(strict=True)` whose failure lists missing, unexpected and mis-shaped
    keys, instead of the reference's silent partial load."""
    problems = key_mismatches({k: v.shape for k, v in module.state_dict().items()}, tensors)
    if problems:
        raise CheckpointError(f"{where}: does not match the network ({problems})")
    module.load_state_dict(tensors, strict=True)


def load_net(
    ckpt: Checkpoint, role: str, device: torch.device, *, averaged: bool = False
) -> nn.Module:
    """The checkpoint's G, D or E (with `averaged`, the moving average of G or E), built
    from its own config and loaded strictly, in eval mode on `device`: the one way a saved
    net comes back."""
    net = ckpt.config.net
    if role == "E" and not net.use_features:
        raise ConfigError(
            f"{ckpt.path.parent.parent}: was trained without instance features; train with "
            "--instance-feat (or --label-feat) to encode, cluster and pick styles"
        )
    build = {"G": build_generator, "D": build_discriminator, "E": build_encoder}[role]
    module = build(net)
    file = f"{role}_ema" if averaged else role
    load_strict(module, ckpt.tensors(file), f"{ckpt.path}/{file}.safetensors")
    return module.to(device).eval()
