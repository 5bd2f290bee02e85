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

    def __init__(self, root: Path, checkpoint: Checkpoint) -> None:
        self.root, self.checkpoint = Path(root), checkpoint
        self._nets: dict[tuple[str, str], nn.Module] = {}
        self._bank: FeatureBank | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], checkpoint: str = "latest") -> Run:
        """Open the run trained (or imported) into `path` at `checkpoint`: `latest`, a step
        number or `epoch:N` (see `select_checkpoint`). `path` may also be one checkpoint
        folder of a run (`RUN/checkpoints/step-0001200`). A folder that is not a run, or a
        run without that checkpoint, is a one-line error saying what to pass instead."""
        given = Path(path)
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
            return cls(root, open_checkpoint(given))
        return cls(given, select_checkpoint(given, checkpoint))

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r}, {self.stage} stage, step {self.step})"

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
            self._nets[key] = load_net(self.checkpoint, role, device)
        return self._nets[key]
