"""Scoring during training (`--eval-every N` epochs): the checkpoint just saved is opened as
any run is (`Run.open`, its averaged weights) and scored on a held-out split through the
same evaluate core as `p2phd evaluate`: PSNR always, mIoU with `--segmenter`, FID and KID
with `--inception`; for measured fields PSNR and the correlation coefficient. Each pass
writes `RUN/evals/step-NNNNNNN/` (the images, eval.json, index.html and `scores.json`) in
one rename, so a kill leaves no half-written pass, and the `BEST` pointer beside `LATEST`
names the checkpoint with the best score of `--best-metric`.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch

from p2phd.atomic import atomic_dir, write_text
from p2phd.checkpoint import RunDir, read_pointer, write_best
from p2phd.config import RunOptions, TrainConfig
from p2phd.data.manifest import read_manifest
from p2phd.errors import ConfigError
from p2phd.eval.evaluate import EvalOptions, evaluate_run, open_scorers
from p2phd.eval.field_eval import evaluate_field_run
from p2phd.jsonfile import read_json
from p2phd.runtime import DeviceOptions
from p2phd.synth.run import Run

HIGHER_IS_BETTER = {"miou": True, "psnr": True, "cc": True, "fid": False}
SCORES = "scores.json"


def best_metric(cfg: TrainConfig) -> str:
    """The metric BEST follows: --best-metric, or the first available of mIoU (with a
    segmenter), FID (with an Inception), PSNR; the correlation coefficient for fields.
    A metric the run cannot compute is refused before training starts."""
    run, fields = cfg.run, cfg.net.fields is not None
    available = ["cc", "psnr"] if fields else ["psnr"]
    if not fields and run.inception:
        available.insert(0, "fid")
    if not fields and run.segmenter:
        available.insert(0, "miou")
    if run.best_metric == "auto":
        return available[0]
    if run.best_metric not in available:
        need = {
            "miou": "--segmenter FILE",
            "fid": "--inception FILE",
            "cc": "measured fields",
        }.get(run.best_metric, "images")
        raise ConfigError(
            f"--best-metric {run.best_metric}: this run scores {', '.join(available)}; "
            f"{run.best_metric} needs {need}"
        )
    return run.best_metric


def check_scoring(cfg: TrainConfig) -> None:
    """--eval-every's options, before any step: the split exists, the files are there."""
    run = cfg.run
    if not run.eval_every:
        return
    best_metric(cfg)
    entry = read_manifest(Path(run.data_root)).splits.get(run.eval_split)
    if entry is None or not entry.items:
        raise ConfigError(
            f"--eval-split {run.eval_split}: {run.data_root} has no such split; prep one "
            "(a test_* source, or prep --val-fraction F for a val split)"
        )
    if not entry.has_images:
        raise ConfigError(
            f"--eval-split {run.eval_split}: {run.data_root} has no photos (targets) in it "
            "to score against; pass another split, or prep --val-fraction F"
        )
    open_scorers(_eval_options(run), torch.device("cpu"))  # evaluate's check and words


def _eval_options(run: RunOptions) -> EvalOptions:
    """What each pass asks of the evaluate core: the run's scorers, encoded styles."""
    return EvalOptions(
        inception=Path(run.inception) if run.inception else None,
        segmenter=Path(run.segmenter) if run.segmenter else None,
        use_cached_inception=False,
        encoded_styles=True,  # a feature run has no style bank while it trains
    )


def score_checkpoint(root: Path, step: int, cfg: TrainConfig) -> dict[str, float | None]:
    """Score the run's checkpoint at `step` on the eval split; the pass's folder appears
    complete or not at all. Returns the scores ({"psnr", "miou", "fid"} or, for fields,
    {"psnr", "cc"}; None where not computed)."""
    run, opts = Run.open(root, str(step)), cfg.run
    device = DeviceOptions(opts.device, opts.precision)
    final = eval_dir(RunDir(root), step)
    with atomic_dir(final) as tmp:
        if cfg.net.fields is not None:
            fields = evaluate_field_run(run, Path(opts.data_root), tmp, split=opts.eval_split,
                                        device=device).scores  # fmt: skip
            scores: dict[str, float | None] = {
                "psnr": fields.mean["psnr"],
                "cc": fields.pooled["cc"],
            }
        else:
            report = evaluate_run(run, Path(opts.data_root), tmp, split=opts.eval_split,
                                  options=_eval_options(opts), device=device)  # fmt: skip
            s = report.scores
            scores = {
                "psnr": s.psnr,
                "miou": s.segmentation.miou if s.segmentation is not None else None,
                "fid": s.fid,
            }
        scores = {k: v if v is None or math.isfinite(v) else None for k, v in scores.items()}
        record = {"step": step, "weights": run.weights, "scores": scores}
        write_text(tmp / SCORES, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return scores


def eval_dir(run: RunDir, step: int) -> Path:
    return run.root / "evals" / f"step-{step:07d}"


def recorded_scores(run: RunDir, step: int) -> dict[str, Any] | None:
    """The scores of the pass at `step`, if it completed."""
    path = eval_dir(run, step) / SCORES
    if not path.is_file():
        return None
    try:
        record = read_json(path, max_bytes=1 << 20)
        scores = record["scores"]
        return {str(k): v for k, v in scores.items() if v is None or isinstance(v, int | float)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # SchemaError too
        return None


def is_better(metric: str, value: float | None, best: float | None) -> bool:
    """Whether `value` beats `best` on `metric` (a missing score never does)."""
    if value is None:
        return False
    if best is None:
        return True
    return value > best if HIGHER_IS_BETTER[metric] else value < best


def clean_partial_evals(run: RunDir) -> None:
    """Remove the temporary folders of a pass a kill interrupted (we hold the run's lock)."""
    evals = run.root / "evals"
    if evals.is_dir():
        for tmp in evals.glob(".step-*"):
            shutil.rmtree(tmp, ignore_errors=True)


class Scorer:
    """The passes of one training invocation (rank 0): score, log, follow BEST."""

    def __init__(self, cfg: TrainConfig, run: RunDir) -> None:
        self.cfg, self.run = cfg, run
        self.metric = best_metric(cfg)
        self.best: float | None = None
        best = read_pointer(run.best)
        if best is not None:
            self.best = (recorded_scores(run, int(best.removeprefix("step-"))) or {}).get(
                self.metric
            )

    def score(self, step: int) -> tuple[dict[str, float | None], bool]:
        """Score the checkpoint of `step`; (its scores, whether it is the new BEST). The
        global RNG is left as it was: a resumed run trains on exactly as before."""
        with torch.random.fork_rng(devices=[]):
            scores = score_checkpoint(self.run.root, step, self.cfg)
        better = is_better(self.metric, scores.get(self.metric), self.best)
        if better:
            self.best = scores[self.metric]
            write_best(self.run, step)
        return scores, better
