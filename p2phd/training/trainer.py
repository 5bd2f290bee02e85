"""One Trainer for the three stages: data, resume, the loop, checkpoints.

Everything a run needs is built here, once, from its config: the process (seed, kernels,
lock, signals), the data, the nets (`training.gan`) and their state (`training.state`). The
stages' configs come from `training.run_config`. The trainer reports through a callback and
never prints; the CLI draws the progress bar. Under torchrun every rank runs this loop on
its slice of each batch, the ranks agree on skipping a step and on stopping, and rank 0
alone writes.

The learning rate is a function of the epoch (constant for `epochs`, then linear decay), so
it carries over unchanged when a run goes from train-local to train-joint, and on resume.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from p2phd.atomic import append_line, make_dirs, write_json_atomic
from p2phd.checkpoint import (
    Checkpoint,
    RunDir,
    clean_partial,
    config_record,
    latest_checkpoint,
    read_config_record,
    require_checkpoint,
    save_checkpoint,
)
from p2phd.config import TrainConfig, schedule_growth
from p2phd.data.augment import Augment
from p2phd.data.dataset import EpochBatchSampler, PreppedDataset, check_fits, steps_per_epoch
from p2phd.errors import ConfigError, TrainingAborted
from p2phd.limits import (
    check_discriminator_scales,
    check_memory,
    check_side,
    memory_fix,
    training_bytes,
)
from p2phd.loss_terms import LossTerms
from p2phd.runtime import resolve_precision, seed_everything, use_fast_kernels
from p2phd.training.board import Board, check_tensorboard
from p2phd.training.distributed import Dist, setup, teardown
from p2phd.training.gan import Pix2PixHD
from p2phd.training.process import RunLock, StopSignals, worker_init
from p2phd.training.samples import write_sample, write_samples_page
from p2phd.training.scoring import (
    Scorer,
    check_scoring,
    clean_partial_evals,
    recorded_scores,
)
from p2phd.training.state import (
    restore,
    restore_averages,
    start_from_global,
    training_tensors,
)


@dataclass(frozen=True, slots=True)
class TrainingData:
    """What training reads, for its first line: a forgotten --load-width shows at once."""

    images: int
    sizes: tuple[tuple[int, int], ...]  # the distinct (width, height) after the load resize
    load_width: int | None  # None: the prepped size
    crop_size: int | None
    memory_note: str | None = None  # a size that fits but takes much of the device's memory


@dataclass(frozen=True, slots=True)
class TrainingEvent:
    """What the trainer tells its caller (the CLI's progress bar): the start, then every
    step, with the losses at logging steps. `epoch` counts from 1."""

    event: Literal["start", "step", "eval"]
    step: int
    total_steps: int
    epoch: int
    total_epochs: int
    lr: float = 0.0
    losses: LossTerms[float] | None = None
    nonfinite_skipped: int = 0
    resumed_from: int | None = None
    data: TrainingData | None = None  # at the start: what is trained on, at which size
    scores: dict[str, float | None] | None = None  # an --eval-every pass's
    best: bool = False  # the pass's checkpoint is the new BEST


@dataclass(frozen=True, slots=True)
class TrainResult:
    run: Path
    stage: str
    step: int
    total_steps: int
    checkpoint: Path | None
    interrupted_by: int | None  # the signal number that stopped the run early, if any
    is_main: bool  # rank 0 (or the only process): the one that reports


def train(
    cfg: TrainConfig,
    run_path: Path,
    on_report: Callable[[TrainingEvent], None] | None = None,
    *,
    init_from: Path | None = None,
) -> TrainResult:
    """Train (or resume) the run in `run_path` until its stage's last step or a signal.

    `cfg` comes from `training_config`, which checked it against the run it continues (its
    stage and what it trains), the VGG weights and the options. `init_from`: for the local
    stage, the global run whose G1 and D start a new run.
    """
    dist = setup(cfg.run.device)
    run = RunDir(Path(run_path))
    try:
        with ExitStack() as stack:
            if dist.is_main:
                if run.root.exists() and not run.root.is_dir():
                    raise ConfigError(
                        f"--run {run.root}: is a file, not a run folder; pass "
                        "a folder (new, or one a p2phd training wrote)"
                    )
                make_dirs(run.root)
                stack.enter_context(RunLock(run.lock))
            report = on_report if on_report and dist.is_main else (lambda r: None)
            return Trainer(cfg, run, dist, report, init_from).fit()
    finally:
        teardown(dist)


class LateFlags:
    """Per-step flags made on the device (skipped, stop) that the host reads later: on CUDA
    each is copied to pinned memory behind its step's work, so reading the previous step's
    flags costs no wait; on the CPU they are simply there."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.pending: deque[tuple[int, Tensor, Any]] = deque()

    def push(self, step: int, flags: Tensor) -> None:
        event = None
        if self.cuda:
            host = torch.empty(flags.shape, dtype=flags.dtype, pin_memory=True)
            host.copy_(flags, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            flags = host
        self.pending.append((step, flags, event))

    def read(self, upto: int) -> list[tuple[int, bool, bool]]:
        """(step, skipped, stop asked) of every pushed step up to `upto`, in order."""
        out = []
        while self.pending and self.pending[0][0] <= upto:
            step, host, event = self.pending.popleft()
            if event is not None:
                event.synchronize()
            skipped, stop = host.tolist()
            out.append((step, skipped > 0, stop > 0))
        return out


def _closing_batches(loader: Iterable[dict[str, Any]]) -> Generator[dict[str, Any]]:
    """The loader's batches through a generator whose `close()` shuts the loader's worker
    processes down there and then. Dropping the iterator is not enough: an error raised in a
    worker carries a traceback that holds the iterator, and torch gives up on a worker that
    does not stop within its timeout. Workers ignore SIGTERM, so one left running would make
    multiprocessing wait for it forever at exit (a test suite or a notebook never ends)."""
    iterator = iter(loader)
    workers = list(getattr(iterator, "_workers", ()))  # torch's multi-process iterator
    try:
        yield from iterator
    finally:
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()
        del iterator


class Trainer:
    """Builds nets, optimisers and data for a config, resumes, and runs the loop."""

    def __init__(
        self,
        cfg: TrainConfig,
        run: RunDir,
        dist: Dist,
        report: Callable[[TrainingEvent], None],
        init_from: Path | None,
    ) -> None:
        self.cfg, self.run, self.dist, self.report = cfg, run, dist, report
        self.precision = resolve_precision(cfg.run.precision, dist.device)
        self.extended: dict[str, int] = {}
        self.history = self._history()
        dist.barrier()  # rank 0 has cleaned up after any crash before anyone reads
        augment = Augment(
            cfg.data.load_width,
            cfg.data.crop_size,
            cfg.data.flip,
            cfg.net.size_multiple,
            cfg.data.rotate,
        )
        net = cfg.net
        self.dataset = PreppedDataset(
            Path(cfg.run.data_root),
            "train",
            augment,
            seed=cfg.optim.seed,
            input_nc=net.input_nc,
            output_nc=net.output_nc,
            instance_classes=net.style_pool == "instance",
        )
        self._check_sizes()
        self.steps_per_epoch = steps_per_epoch(
            len(self.dataset), cfg.optim.batch_size, dist.world_size
        )
        loaded = {augment.load_size(it.width, it.height) for it in self.dataset.items}
        self.loaded_sizes = tuple(sorted(loaded))
        self.train_size = list(self.loaded_sizes[0]) if len(loaded) == 1 else None
        use_fast_kernels(dist.device)
        seed_everything(cfg.optim.seed)  # the nets' initial weights
        self.model = Pix2PixHD(cfg, self.precision, dist)
        self.step = self.saved_step = self.nonfinite_skipped = 0
        event: dict[str, Any] = {"stage": cfg.stage, "event": "start"}
        resumed = self._resume()
        if resumed is not None:
            event["event"] = "resume"
            if self.extended:
                event["extended"] = self.extended  # the schedule grew: --epochs/--decay-epochs
        elif init_from is not None:
            source = require_checkpoint(init_from)
            self._check_g1_size(source, init_from)
            start_from_global(self.model, source)
            event["from"] = str(source.path.resolve())
        restore_averages(self.model, resumed)
        check_scoring(cfg)
        self.scorer = Scorer(cfg, run) if cfg.run.eval_every and dist.is_main else None
        if cfg.run.tensorboard:
            check_tensorboard()
        self.board = Board(run.root, self.step) if cfg.run.tensorboard and dist.is_main else None
        self.resumed_from = self.step if event["event"] == "resume" else None
        self.history.append({**event, "step": self.step, "time": time.time()})
        if dist.is_main:
            write_json_atomic(run.config, config_record(cfg, self.history))

    # ---- set-up checks -------------------------------------------------------------------
    def _history(self) -> list[dict[str, Any]]:
        """The run's stage history (empty for a new run, or one that saved no checkpoint:
        it trained nothing, so it starts afresh); notes how the schedule grew."""
        if self.dist.is_main and self.run.config.is_file():
            clean_partial(self.run)
            clean_partial_evals(self.run)
        if not self.run.config.is_file() or latest_checkpoint(self.run) is None:
            return []
        stored, history = read_config_record(self.run.config)
        self.extended = schedule_growth(stored, self.cfg)
        return history

    def _check_sizes(self) -> None:
        """The data fits the nets, D's scales fit the samples, and the samples fit the
        device's memory (an estimate, said in the first line when it is large)."""
        check_fits(self.dataset, self.cfg.net)
        sizes = self.dataset.sample_sizes()
        net, batch = self.cfg.net, self.cfg.optim.batch_size
        for w, h in sizes:
            check_side(max(w, h), f"{self.dataset.root}: a training sample of {w}x{h}, whose side")
            check_discriminator_scales(net, w, h)
        w, h = max(sizes, key=lambda s: s[0] * s[1])
        needed = training_bytes(net, w, h, batch)
        self.memory_note = check_memory(
            needed,
            str(self.dist.device),
            f"training at {w}x{h} (batch {batch})",
            memory_fix(net, needed, True, "pass a smaller --load-width or --crop-size"),
        )
        if len(sizes) > 1 and self.cfg.optim.batch_size > 1:
            raise ConfigError(
                f"--batch-size {self.cfg.optim.batch_size}: training images come in "
                f"{len(sizes)} sizes; use --batch-size 1, or --crop-size to make them equal"
            )

    def _check_g1_size(self, source: Checkpoint, global_run: Path) -> None:
        """G1 sees the local stage's input downsampled by 2 per enhancer: that must be the
        size G1 was trained at, or G2 is trained around a G1 looking at another scale."""
        g1_size, size = source.state.train_size, self.train_size
        if g1_size is None or size is None:  # images of several sizes: nothing one to compare
            return
        factor = 2**self.cfg.net.n_local_enhancers
        fed = (size[0] // factor, size[1] // factor)
        if fed != tuple(g1_size):
            width = g1_size[0] * factor
            given = self.cfg.data.load_width
            now = f"--load-width {given}" if given else "the prepped size"
            raise ConfigError(
                f"--global {global_run}: its G1 was trained at {g1_size[0]}x{g1_size[1]}, but "
                f"this local stage trains at {size[0]}x{size[1]} ({now}), which G1 would see "
                f"at {fed[0]}x{fed[1]}; train at {factor}x G1's size: --load-width {width}"
            )

    # ---- checkpoints ---------------------------------------------------------------------
    def _resume(self) -> Checkpoint | None:
        """The checkpoint resumed from (its weights, optimisers and RNG loaded), if any."""
        ckpt = latest_checkpoint(self.run)
        if ckpt is None:
            return None
        restore(self.model, ckpt)
        self.step = self.saved_step = ckpt.step
        self.nonfinite_skipped = ckpt.state.nonfinite_skipped
        return ckpt

    def save(self, epoch: int, *, milestone: bool = False) -> Path | None:
        """Rank 0 writes a checkpoint of the current step; the others just note it."""
        self.saved_step = self.step
        if not self.dist.is_main:
            return None
        tensors, groups = training_tensors(self.model)
        state = {
            "stage": self.cfg.stage,
            "epoch": epoch,
            "lr": self.cfg.optim.lr_at(epoch),
            "nonfinite_skipped": self.nonfinite_skipped,
            "optim": groups,
            "train_size": self.train_size,  # what synthesize resizes to by default
        }
        record = config_record(self.cfg, self.history)
        return save_checkpoint(
            self.run,
            self.step,
            tensors,
            state,
            record,
            keep_last=self.cfg.run.keep_last,
            milestone=milestone,
        )

    # ---- the loop ------------------------------------------------------------------------
    def loader(self) -> DataLoader[dict[str, Any]]:
        """Batches from the current step on, in the order an uninterrupted run sees them."""
        sampler = EpochBatchSampler(
            len(self.dataset),
            self.cfg.optim.batch_size,
            seed=self.cfg.optim.seed,
            start_step=self.step,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        workers = self.cfg.run.num_workers
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.dist.device.type == "cuda",
            worker_init_fn=functools.partial(worker_init, trainer=os.getpid()),
            prefetch_factor=4 if workers else None,
            generator=torch.Generator(),  # leaves the global RNG alone: exact resume
        )

    def total_epochs(self) -> int:
        """The epochs of this stage: the local stage ends after fix_global_epochs."""
        optim = self.cfg.optim
        return optim.fix_global_epochs if self.cfg.stage == "local" else optim.total_epochs

    def total_steps(self) -> int:
        """The last step of this stage (or of this invocation, with max_steps)."""
        total = self.total_epochs() * self.steps_per_epoch
        return min(total, self.cfg.run.max_steps) if self.cfg.run.max_steps else total

    def fit(self) -> TrainResult:
        loader = self.loader()
        total = self.total_steps()
        epoch = self.step // self.steps_per_epoch
        self.report(
            TrainingEvent(
                "start",
                self.step,
                total,
                epoch + 1,
                self.total_epochs(),
                resumed_from=self.resumed_from,
                data=TrainingData(
                    len(self.dataset),
                    self.loaded_sizes,
                    self.cfg.data.load_width,
                    self.cfg.data.crop_size,
                    self.memory_note,
                ),
            )
        )
        self._last_log = (time.perf_counter(), self.step)
        epoch_end = self.step > 0 and self.step % self.steps_per_epoch == 0
        if epoch_end and self.step == self.saved_step and self._scoring_due():
            self._score(epoch - 1)  # a kill stopped this pass: it comes first
        batches = _closing_batches(loader if self.step < total else [])
        try:
            with StopSignals() as signals:
                saved, stopping = self._loop(batches, total, signals)
        finally:
            batches.close()  # ends the loader's workers now, whatever ended the loop
            if self.board is not None:
                self.board.close()
        self.dist.barrier()  # the last checkpoint is complete before any rank exits
        stopped_by = None
        if stopping:  # this rank's signal, or (under torchrun) another rank's
            stopped_by = signals.signum or int(signal.SIGTERM)
        return TrainResult(
            self.run.root, self.cfg.stage, self.step, total, saved, stopped_by, self.dist.is_main
        )

    def _loop(
        self, batches: Generator[dict[str, Any]], total: int, signals: StopSignals
    ) -> tuple[Path | None, bool]:
        """Steps until `total` or a stop; (the last checkpoint written, stopped early).

        The host never waits for a step it just launched: whether a step's losses were finite
        (and whether any rank was asked to stop) is decided on the device, where the fused
        Adam step skips itself, and read by the host one step later, or at once at logging
        and saving steps, which read values anyway."""
        opts = self.cfg.run
        saved: Path | None = None
        self._streak, stopping, epoch = 0, False, self.step // self.steps_per_epoch
        flags = LateFlags(self.dist.device)
        while self.step < total and not stopping:
            epoch = self.step // self.steps_per_epoch
            lr = self.cfg.optim.lr_at(epoch)
            self.model.set_lr(lr)
            batch = next(batches)
            x, real, pool = self.model.step_inputs(batch)
            fake, terms, now = self.model.step(x, real, pool, stop=signals.signum is not None)
            self.step += 1
            self.model.update_averages(self.step)
            flags.push(self.step, now)
            logging = self.step % opts.log_every == 0 or self.step == total
            milestone = (
                opts.keep_every > 0
                and self.step % self.steps_per_epoch == 0  # the epoch's last step
                and (epoch + 1) % opts.keep_every == 0
            )
            scoring = self._scoring_due()
            saving = self.step % opts.save_every == 0 or milestone or scoring
            stopping = self._read(flags, self.step if logging or saving else self.step - 1)
            values = None
            if logging:
                values = LossTerms(
                    **self.dist.mean({k: float(v) for k, v in terms._asdict().items()})
                )
                self._log(epoch, lr, values, self._streak == 0)
            self.report(
                TrainingEvent(
                    "step",
                    self.step,
                    total,
                    epoch + 1,
                    self.total_epochs(),
                    lr,
                    values,
                    self.nonfinite_skipped,
                )
            )
            if self.dist.is_main and (self.step % opts.sample_every == 0 or self.step == total):
                grid = write_sample(self.run, self.step, batch, fake, self.cfg)
                if self.board is not None:
                    self.board.image(self.step, grid)
            if saving and self._streak == 0:  # never mid-streak
                saved = self.save(epoch, milestone=milestone)
                if scoring:
                    self._score(epoch)
        stopping = self._read(flags, self.step) or stopping
        if self.step > self.saved_step:  # the end, or a signal: keep what was done
            saved = self.save(epoch)
        return saved, stopping

    def _scoring_due(self) -> bool:
        """Whether the current step ends an epoch --eval-every scores, not scored yet."""
        every = self.cfg.run.eval_every
        if not every or self.step == 0 or self.step % self.steps_per_epoch:
            return False
        if (self.step // self.steps_per_epoch) % every:
            return False
        # every rank reads the run folder, so all agree (rank 0 writes the pass after this)
        return recorded_scores(self.run, self.step) is None

    def _score(self, epoch: int) -> None:
        """Score the checkpoint just saved (rank 0; the others wait), log it, report it."""
        if self.scorer is not None:
            scores, best = self.scorer.score(self.step)
            record = {"step": self.step, "epoch": epoch + 1, "time": time.time()}
            record |= {f"eval_{k}": v for k, v in scores.items() if v is not None}
            append_line(self.run.log, json.dumps(record))
            write_samples_page(self.run, self.cfg)  # the scores' curves
            if self.board is not None:
                self.board.scores(self.step, scores)
            total = self.total_steps()
            self.report(TrainingEvent("eval", self.step, total, epoch + 1, self.total_epochs(),
                                      scores=scores, best=best))  # fmt: skip
        self.dist.barrier()

    def _read(self, flags: LateFlags, upto: int) -> bool:
        """Count the skipped steps up to `upto` (waiting for them) and end the run after too
        many in a row; whether a rank asked to stop."""
        stop = False
        for step, skipped, asked in flags.read(upto):
            self._streak = self._streak + 1 if skipped else 0
            self.nonfinite_skipped += int(skipped)
            stop |= asked
            if self._streak >= self.cfg.run.max_nonfinite:
                raise TrainingAborted(
                    f"{self._streak} steps in a row had non-finite losses (up to step "
                    f"{step}); nothing was saved since, the last checkpoint is in "
                    f"{self.run.checkpoints}; lower --lr or check the data"
                )
        return stop

    def _log(self, epoch: int, lr: float, values: LossTerms[float], finite: bool) -> None:
        if not self.dist.is_main:
            return
        now = time.perf_counter()
        last_time, last_step = self._last_log
        rate = (self.step - last_step) / max(now - last_time, 1e-9)
        self._last_log = (now, self.step)
        record = {
            "step": self.step,
            "epoch": epoch + 1,  # counted from 1, as people count them
            "lr": lr,
            "it_per_s": round(rate, 3),
            "nonfinite_skipped": self.nonfinite_skipped,
            "finite": finite,
            "time": time.time(),
            **values._asdict(),
        }
        append_line(self.run.log, json.dumps(record))
        if self.board is not None:
            self.board.losses(self.step, values, lr)
