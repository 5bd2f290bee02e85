"""A trained run, opened once: what every command that reads a run starts from.

`Run.open` reads the run's chosen checkpoint (the newest by default: its state and config)
once; the nets and the style bank are built the first time they are asked for, so a command
that only needs the config (inspect) loads no weights, and one that renders loads G once.
This is the one place of the inference half that reads checkpoints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from p2phd.checkpoint import (
    STEP_NAME,
    Checkpoint,
    RunDir,
    complete_checkpoints,
    latest_checkpoint,
    load_net,
    open_checkpoint,
    read_config_record,
    require_checkpoint,
    select_checkpoint,
)
from p2phd.config import NetConfig, Stage, TrainConfig
from p2phd.errors import CheckpointError, ConfigError
from p2phd.synth.bank import CLUSTERS, FEATURES, FeatureBank


class Run:
    """A run folder and its newest checkpoint; G, E and the style bank on first use."""

    def __init__(self, root: Path, checkpoint: Checkpoint, weights: str = "auto") -> None:
        self.root, self.checkpoint = Path(root), checkpoint
        self.weights = _weights(checkpoint, weights)
        self._nets: dict[tuple[str, str], nn.Module] = {}
        self._bank: FeatureBank | None = None

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], checkpoint: str = "latest", weights: str = "auto"
    ) -> Run:
        """Open the run trained (or imported) into `path` at `checkpoint`: `latest`, `best`,
        a step number or `epoch:N` (see `select_checkpoint`), also written `RUN@best`.
        `path` may also be one checkpoint folder of a run (`RUN/checkpoints/step-0001200`).
        A folder that is not a run, or a run without that checkpoint, is a one-line error
        saying what to pass instead.
        `weights`: `ema` (the moving average of G and E), `raw` (the trained weights), or
        `auto`: the average where the checkpoint has one."""
        given = Path(path)
        if not given.exists() and "@" in given.name:  # RUN@best, RUN@1200: the checkpoint
            base, _, which = str(given).rpartition("@")
            if checkpoint != "latest":
                raise ConfigError(f"{given}: names its checkpoint; drop --checkpoint")
            given, checkpoint = Path(base), which
        if STEP_NAME.fullmatch(given.name) and given.parent.name == "checkpoints":
            if checkpoint != "latest":
                raise ConfigError(
                    f"--checkpoint {checkpoint}: {given} is one checkpoint already; pass "
                    "its run folder with --checkpoint, or the checkpoint folder alone"
                )
            if not (given / "state.json").is_file():
                raise CheckpointError(f"{given}: not a complete checkpoint (no state.json)")
            root = given.parent.parent
            require_checkpoint(root)  # the folder around it is a run
            return cls(root, open_checkpoint(given), weights)
        return cls(given, select_checkpoint(given, checkpoint), weights)

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r}, {self.stage} stage, step {self.step}, {self.weights})"

    @property
    def config(self) -> TrainConfig:
        return self.checkpoint.config

    @property
    def net(self) -> NetConfig:
        return self.checkpoint.config.net

    @property
    def stage(self) -> Stage:
        return self.checkpoint.config.stage

    @property
    def step(self) -> int:
        return self.checkpoint.step

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes' names (from the data it was trained on), or () when unknown."""
        return self.net.class_names

    @property
    def train_size(self) -> tuple[int, int] | None:
        """(width, height) of the images it was trained on, when they had one size: the size
        synthesis resizes label maps to by default."""
        return self.checkpoint.state.train_size

    def checkpoints(self) -> list[Checkpoint]:
        """Every complete checkpoint of the run, oldest first: what --checkpoint can name."""
        return complete_checkpoints(RunDir(self.root))

    def latest_path(self) -> Path | None:
        """The checkpoint folder LATEST names (the newest complete one without a LATEST)."""
        latest = latest_checkpoint(RunDir(self.root))
        return latest.path if latest is not None else None

    def check_output(self, out: Path, option: str) -> None:
        """Refuse an output folder that is the run, holds it, or lies in its checkpoints."""
        RunDir(self.root).check_output(out, option)

    def history(self) -> list[dict[str, Any]]:
        """The stage history of the run's config.json: each start, resume and import."""
        return read_config_record(RunDir(self.root).config)[1]

    @property
    def features_path(self) -> Path:
        return self.root / FEATURES

    @property
    def clusters_path(self) -> Path:
        return self.root / CLUSTERS

    def generator(self, device: torch.device) -> nn.Module:
        """G in eval mode on `device`, loaded strictly (once per device)."""
        return self._net("G", device)

    def encoder(self, device: torch.device) -> nn.Module:
        """E in eval mode on `device` (runs with --instance-feat or --label-feat)."""
        return self._net("E", device)

    def style_bank(self) -> FeatureBank:
        """The cluster centres and class means of `p2phd cluster` (read once)."""
        if self._bank is None:
            net = self.net
            self._bank = FeatureBank.load(self.root, net.label_nc, net.feat_num, net.class_names)
        return self._bank

    def _net(self, role: str, device: torch.device) -> nn.Module:
        key = (role, str(device))
        if key not in self._nets:
            averaged = self.weights == "ema" and role in ("G", "E")
            self._nets[key] = load_net(self.checkpoint, role, device, averaged=averaged)
        return self._nets[key]


WEIGHTS = ("auto", "ema", "raw")


def _weights(ckpt: Checkpoint, asked: str) -> str:
    """`ema` or `raw`: which weights of G and E the run renders with."""
    if asked not in WEIGHTS:
        raise ConfigError(f"--weights {asked}: use ema (the moving average), raw or auto")
    has = ckpt.has_average("G")
    if asked == "ema" and not has:
        raise CheckpointError(
            f"{ckpt.path}: holds no moving average of G (trained with --ema-beta 0, or "
            "before p2phd kept one); use --weights raw"
        )
    return "ema" if asked == "ema" or (asked == "auto" and has) else "raw"
