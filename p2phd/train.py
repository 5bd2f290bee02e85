"""One Trainer for the training stages (DESIGN.md): data, resume, the loop, checkpoints.

The nets and the step itself live in `p2phd.gan`. The trainer reports through a callback
and never prints; the CLI draws the progress bar.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader

from p2phd.checkpoint import (
    RunDir,
    clean_partial,
    config_record,
    latest_checkpoint,
    read_config_record,
    restore_rng,
    rng_tensors,
    save_checkpoint,
    write_json_atomic,
)
from p2phd.config import (
    DataConfig,
    LossConfig,
    NetConfig,
    OptimConfig,
    RunOptions,
    TrainConfig,
    diff,
)
from p2phd.data.augment import Augment
from p2phd.data.dataset import EpochBatchSampler, PreppedDataset
from p2phd.data.prep import read_manifest
from p2phd.errors import CheckpointError, ConfigError, TrainingAborted
from p2phd.gan import Pix2PixHD
from p2phd.runtime import resolve_device, resolve_precision
from p2phd.training_support import RunLock, StopSignals, worker_init, write_sample


@dataclass(frozen=True, slots=True)
class Report:
    """What the trainer tells its caller: every step, with losses at logging steps."""

    event: Literal["start", "step", "sample", "checkpoint", "end"]
    step: int
    total_steps: int
    epoch: int = 0
    lr: float = 0.0
    losses: dict[str, float] | None = None
    it_per_s: float | None = None
    nonfinite_skipped: int = 0
    path: str | None = None
    resumed_from: int | None = None


@dataclass(frozen=True, slots=True)
class TrainResult:
    run: Path
    step: int
    total_steps: int
    checkpoint: Path | None
    interrupted_by: int | None  # the signal number that stopped the run early, if any


def build_config(stage: str, data_root: Path, flags: dict[str, dict[str, Any]]) -> TrainConfig:
    """The run's config from the options given; `label_nc` and `instance` default to the
    prepped dataset's, and options that contradict the dataset are refused."""
    manifest = read_manifest(Path(data_root))
    net = dict(flags.get("net", {}))
    net.setdefault("label_nc", manifest["label_nc"])
    net.setdefault("instance", manifest["instance"])
    if 0 < net["label_nc"] < manifest["label_nc"] or (net["label_nc"] == 0) != (
        manifest["label_nc"] == 0
    ):
        raise ConfigError(
            f"--label-nc {net['label_nc']}: {data_root} was prepped with "
            f"label_nc {manifest['label_nc']}; pass --label-nc {manifest['label_nc']}"
        )
    if net["instance"] and not manifest["instance"]:
        raise ConfigError(f"--instance: {data_root} has no instance maps; pass --no-instance")
    return TrainConfig(
        stage=stage,  # type: ignore[arg-type]
        net=NetConfig(**net),
        loss=LossConfig(**flags.get("loss", {})),
        data=DataConfig(**flags.get("data", {})),
        optim=OptimConfig(**flags.get("optim", {})),
        run=RunOptions(data_root=str(data_root), **flags.get("run", {})),
    )


def train(
    cfg: TrainConfig, run_path: Path, on_report: Callable[[Report], None] | None = None
) -> TrainResult:
    """Train (or resume) the run in `run_path` until its last step, a signal or an error."""
    run = RunDir(Path(run_path))
    if cfg.loss.vgg_loss and cfg.loss.vgg_weights is None:
        raise ConfigError(
            "--vgg-weights: the VGG loss needs VGG19 ImageNet weights from a local file "
            "(torchvision's vgg19-dcbb9e9d.pth, or a .safetensors of it); pass the file, "
            "or train without the loss: --no-vgg-loss"
        )
    run.root.mkdir(parents=True, exist_ok=True)
    with RunLock(run.lock):
        trainer = Trainer(cfg, run, resolve_device(cfg.run.device), on_report or (lambda r: None))
        return trainer.fit()


class Trainer:
    """Builds nets, optimisers and data for a config, resumes, and runs the loop."""

    def __init__(
        self, cfg: TrainConfig, run: RunDir, device: torch.device, report: Callable[[Report], None]
    ) -> None:
        self.cfg, self.run, self.device, self.report = cfg, run, device, report
        self.precision = resolve_precision(cfg.run.precision, device)
        history = self._check_resume()
        augment = Augment(
            cfg.data.load_width, cfg.data.crop_size, cfg.data.flip, cfg.net.size_multiple
        )
        self.dataset = PreppedDataset(
            Path(cfg.run.data_root), "train", augment, seed=cfg.optim.seed
        )
        self._check_sizes()
        self.model = Pix2PixHD(cfg, device, self.precision)
        self.step = self.saved_step = self.nonfinite_skipped = 0
        resumed = self._resume()
        history.append(
            {
                "stage": cfg.stage,
                "event": "resume" if resumed else "start",
                "step": self.step,
                "time": time.time(),
            }
        )
        write_json_atomic(run.config, config_record(cfg, history))
        self.resumed_from = self.step if resumed else None

    # ---- set-up checks -------------------------------------------------------------------
    def _check_resume(self) -> list[dict[str, Any]]:
        """A run folder resumes only with the same net, loss, data and optimiser settings."""
        if not self.run.config.is_file():
            return []
        stored, history = read_config_record(self.run.config)
        changes = diff(stored.fixed_part(), self.cfg.fixed_part())
        if changes:
            raise CheckpointError(
                f"{self.run.root} was trained with other settings ({'; '.join(changes)}); "
                "repeat the original options to resume, or pass a new --run"
            )
        clean_partial(self.run)
        return history

    def _check_sizes(self) -> None:
        sizes = self.dataset.sample_sizes()
        multiple = self.cfg.net.size_multiple
        bad = sorted(s for s in sizes if s[0] % multiple or s[1] % multiple)
        if bad:
            raise ConfigError(
                f"training size {bad[0][0]}x{bad[0][1]} is not a multiple of {multiple} "
                f"(2^n_downsample_global); prep with --multiple {multiple}, or pick "
                "--load-width / --crop-size accordingly"
            )
        if len(sizes) > 1 and self.cfg.optim.batch_size > 1:
            raise ConfigError(
                f"--batch-size {self.cfg.optim.batch_size}: training images come in "
                f"{len(sizes)} sizes; use --batch-size 1, or --crop-size to make them equal"
            )

    # ---- checkpoints ---------------------------------------------------------------------
    def _resume(self) -> bool:
        ckpt = latest_checkpoint(self.run)
        if ckpt is None:
            return False
        self.model.load(ckpt)
        restore_rng(ckpt.tensors("optim"))
        self.step = self.saved_step = ckpt.step
        self.nonfinite_skipped = int(ckpt.state.get("nonfinite_skipped", 0))
        return True

    def save(self, epoch: int) -> Path:
        tensors, groups = self.model.state()
        tensors["optim"].update(rng_tensors())
        state = {
            "stage": self.cfg.stage,
            "epoch": epoch,
            "lr": self.cfg.optim.lr_at(epoch),
            "nonfinite_skipped": self.nonfinite_skipped,
            "optim": groups,
        }
        record = config_record(self.cfg, read_config_record(self.run.config)[1])
        path = save_checkpoint(
            self.run, self.step, tensors, state, record, keep_last=self.cfg.run.keep_last
        )
        self.saved_step = self.step
        return path

    # ---- the loop ------------------------------------------------------------------------
    def loader(self) -> DataLoader[dict[str, Any]]:
        sampler = EpochBatchSampler(
            len(self.dataset),
            self.cfg.optim.batch_size,
            seed=self.cfg.optim.seed,
            start_step=self.step,
        )
        self.steps_per_epoch = sampler.steps_per_epoch
        workers = self.cfg.run.num_workers
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=worker_init,
            prefetch_factor=4 if workers else None,
            generator=torch.Generator(),  # leaves the global RNG alone: exact resume
        )

    def total_steps(self) -> int:
        total = self.cfg.optim.total_epochs * self.steps_per_epoch
        return min(total, self.cfg.run.max_steps) if self.cfg.run.max_steps else total

    def fit(self) -> TrainResult:
        loader = self.loader()
        total, opts = self.total_steps(), self.cfg.run
        epoch = self.step // self.steps_per_epoch
        self.report(Report("start", self.step, total, epoch, resumed_from=self.resumed_from))
        saved: Path | None = None
        streak, last_time, last_step = 0, time.perf_counter(), self.step
        with StopSignals() as stop:
            batches = iter(loader) if self.step < total else iter(())
            while self.step < total and stop.signum is None:
                epoch = self.step // self.steps_per_epoch
                lr = self.cfg.optim.lr_at(epoch)
                self.model.set_lr(lr)
                batch = next(batches)
                fake, terms, finite = self.model.train_step(*self.model.encode(batch))
                self.step += 1
                streak = 0 if finite else streak + 1
                self.nonfinite_skipped += int(not finite)
                if streak >= opts.max_nonfinite:
                    raise TrainingAborted(
                        f"{streak} steps in a row had non-finite losses (up to step "
                        f"{self.step}); nothing was saved since, the last checkpoint is in "
                        f"{self.run.checkpoints}; lower --lr or check the data"
                    )
                values = None
                if self.step % opts.log_every == 0 or self.step == total:
                    now = time.perf_counter()
                    rate = (self.step - last_step) / max(now - last_time, 1e-9)
                    last_time, last_step = now, self.step
                    values = {k: float(v) for k, v in terms.items()}
                    self._log(epoch, lr, values, rate, finite)
                self.report(
                    Report(
                        "step",
                        self.step,
                        total,
                        epoch,
                        lr,
                        values,
                        nonfinite_skipped=self.nonfinite_skipped,
                    )
                )
                if self.step % opts.sample_every == 0 or self.step == total:
                    path = write_sample(
                        self.run.samples, self.step, batch, fake, self.cfg.net.label_nc
                    )
                    self.report(Report("sample", self.step, total, epoch, path=str(path)))
                if self.step % opts.save_every == 0 and streak == 0:  # never mid-streak
                    saved = self._save_and_report(epoch, total)
            if self.step > self.saved_step:  # the end, or a signal: keep what was done
                saved = self._save_and_report(epoch, total)
        self.report(Report("end", self.step, total, epoch))
        return TrainResult(self.run.root, self.step, total, saved, stop.signum)

    def _save_and_report(self, epoch: int, total: int) -> Path:
        path = self.save(epoch)
        self.report(Report("checkpoint", self.step, total, epoch, path=str(path)))
        return path

    def _log(
        self, epoch: int, lr: float, values: dict[str, float], rate: float, finite: bool
    ) -> None:
        record = {
            "step": self.step,
            "epoch": epoch,
            "lr": lr,
            "it_per_s": round(rate, 3),
            "nonfinite_skipped": self.nonfinite_skipped,
            "finite": finite,
            "time": time.time(),
            **values,
        }
        with open(self.run.log, "a") as f:
            f.write(json.dumps(record) + "\n")
