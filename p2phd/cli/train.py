"""`p2phd train-global`, `train-local` and `train-joint`: the three training stages.

The three commands differ only in the stage and in the options the stage accepts; the
options come from one table (`p2phd.cli.flags`). Rerunning a command on an existing run
resumes it from its own config.json: repeat nothing but DATA and --run.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from p2phd.cli.app import (
    AsJson,
    Opt,
    Quiet,
    RateColumn,
    app,
    emit_json,
    err,
    progress_bar,
    user_errors,
)
from p2phd.cli.flags import sort_given, with_signature
from p2phd.loss_terms import TERM_LABELS, LossTerms, active_terms

Data = Annotated[Path, typer.Argument(help="Prepped dataset folder (p2phd prep).")]
Run = Annotated[
    Path,
    Opt(
        "--run",
        "--run-dir",
        help="Run folder; rerunning the command resumes it. Under torchrun spell it "
        "--run-dir (torchrun would take --run for its own --run-path).",
    ),
]
Global = Annotated[
    Path | None, Opt("--global", help="The train-global run holding G1 (for a new run).")
]
DryRun = Annotated[bool, Opt("--dry-run", help="Print the resolved config and stop.")]
EXAMPLES = {
    "global": "p2phd train-global data/cityscapes --run runs/512p --load-width 1024",
    "local": "p2phd train-local data/cityscapes --run runs/1024p --global runs/512p "
    "--epochs 50 --decay-epochs 50",
    "joint": "p2phd train-joint data/cityscapes --run runs/1024p",
}
SUMMARIES = {
    "global": "Train the global generator G1 with the multi-scale discriminator.",
    "local": "Train the local enhancer G2 around the frozen G1 of a train-global run.",
    "joint": "Fine-tune G1 + G2 (+ D) of a train-local run together, continuing its schedule.",
}


def _command(stage: str) -> Any:
    letter = stage[0].upper()

    def command(
        data: Path,
        run: Path,
        global_run: Path | None = None,
        dry_run: bool = False,
        quiet: bool = False,
        as_json: bool = False,
        **options: Any,
    ) -> None:
        from p2phd.training.run_config import training_config

        cfg = training_config(stage, data, run, sort_given(letter, options), global_run)  # type: ignore[arg-type]
        run_training(cfg, run, dry_run=dry_run, quiet=quiet, as_json=as_json, init_from=global_run)

    leading = [
        inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Data),
        inspect.Parameter("run", inspect.Parameter.KEYWORD_ONLY, annotation=Run),
    ]
    if stage == "local":
        leading.append(
            inspect.Parameter(
                "global_run", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Global
            )
        )
    leading += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=kind)
        for name, kind in (("dry_run", DryRun), ("quiet", Quiet), ("as_json", AsJson))
    ]
    command.__doc__ = f"{SUMMARIES[stage]}\n\nExample: {EXAMPLES[stage]}"
    command.__name__ = f"train_{stage}"
    return with_signature(command, leading, letter)


for _stage in ("global", "local", "joint"):
    app.command(f"train-{_stage}")(user_errors(_command(_stage)))


def training_columns(width: int) -> list[ProgressColumn]:
    """At 80 columns: stage, bar, step/total, rate, ETA and the G and D losses; wider
    terminals add the epoch, the elapsed time and every loss term."""
    columns: list[ProgressColumn] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
    ]
    if width >= 120:
        columns[4:4] = [TimeElapsedColumn()]
        columns[1:1] = [TextColumn("{task.fields[epoch]}")]
        columns.append(TextColumn("[dim]{task.fields[terms]}"))
    return columns


def loss_texts(losses: LossTerms[float], shown: tuple[str, ...]) -> tuple[str, str]:
    """("G 1.23 D 0.45", "gan 0.52 feat 0.71 real 0.20 fake 0.25"): the totals the step
    minimises, and the terms that are on (`shown`)."""
    values = losses._asdict()
    terms = " ".join(f"{TERM_LABELS[k]} {values[k]:.3f}" for k in shown)
    return f"G {losses.g_total():.3f} D {losses.d_total():.3f}", terms


def first_line(stage: str, r: Any) -> str:
    """ "train-global: 2975 images at 1024x512 (--load-width 1024), 200 epochs, 595000
    steps": the size shows before the first step, so a forgotten --load-width costs
    seconds, not days."""
    d = r.data
    sizes = "x".join(map(str, d.sizes[0])) if len(d.sizes) == 1 else f"{len(d.sizes)} sizes"
    how = (
        f"--load-width {d.load_width}"
        if d.load_width
        else "the prepped size; --load-width W resizes"
    )
    crop = f", {d.crop_size}x{d.crop_size} crops" if d.crop_size else ""
    return (
        f"train-{stage}: {d.images} images at {sizes} ({how}){crop}, "
        f"{r.total_epochs} epochs, {r.total_steps} step{'s' if r.total_steps != 1 else ''}"
    )


def run_training(
    cfg: Any,
    run: Path,
    *,
    dry_run: bool,
    quiet: bool,
    as_json: bool,
    init_from: Path | None = None,
    console: Console | None = None,
) -> None:
    """Train with a progress bar, then report; a signal exits 130 (SIGINT) / 143 (SIGTERM)."""
    from p2phd.training.trainer import train

    if dry_run:
        emit_json(cfg.to_dict())
        return
    shown = active_terms(cfg.loss)
    out = console or err
    columns = training_columns(out.width)
    with progress_bar(quiet, columns=columns, console=out) as bar:
        task = bar.add_task(cfg.stage, total=None, visible=False, losses="", terms="", epoch="")
        plain = not quiet and not out.is_terminal

        def show(r: Any) -> None:
            epoch = f"epoch {r.epoch}/{r.total_epochs}"
            if r.event == "start":
                bar.update(task, total=r.total_steps, completed=r.step, visible=True, epoch=epoch)
                if not quiet and r.data is not None:
                    bar.console.print(first_line(cfg.stage, r))
                    if r.data.memory_note:
                        bar.console.print(f"note: {r.data.memory_note}")
                if r.resumed_from is not None and not quiet:
                    bar.console.print(f"resuming {run} from step {r.resumed_from}")
            elif r.event == "step":
                bar.update(task, completed=r.step, epoch=epoch)
                if r.losses is not None:
                    totals, terms = loss_texts(r.losses, shown)
                    bar.update(task, losses=totals, terms=terms)
                    if plain:
                        out.print(
                            f"step {r.step}/{r.total_steps} {epoch} lr {r.lr:.2e} "
                            f"{totals} ({terms})"
                        )
            elif r.event == "eval" and not quiet and r.scores is not None:
                found = ", ".join(f"{k} {v:.4g}" for k, v in r.scores.items() if v is not None)
                best = " (new BEST)" if r.best else ""
                bar.console.print(f"scored step {r.step} ({epoch}): {found}{best}")

        result = train(cfg, run, show, init_from=init_from)
    if not result.is_main:
        raise typer.Exit(128 + result.interrupted_by if result.interrupted_by else 0)
    summary = {
        "run": str(result.run),
        "stage": result.stage,
        "step": result.step,
        "total_steps": result.total_steps,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "samples": str(result.run / "samples" / "index.html"),
        "interrupted_by": result.interrupted_by,
    }
    if as_json:
        emit_json(summary)
    elif not quiet:
        if result.checkpoint is None:
            out.print(
                f"nothing to train: {run} is at step {result.step} of "
                f"{result.total_steps}; extend it with --epochs or --decay-epochs"
            )
        else:
            out.print(
                f"{result.stage} stage at step {result.step}/{result.total_steps}; "
                f"checkpoint {result.checkpoint}; samples {summary['samples']}"
            )
        if result.stage == "local" and result.step >= result.total_steps:
            out.print(f"next, G1 and G2 together: p2phd train-joint DATA --run {run}")
    if result.interrupted_by is not None:
        out.print(
            f"stopped by signal {result.interrupted_by} after saving step {result.step}; "
            "rerun the same command to resume"
        )
        raise typer.Exit(128 + result.interrupted_by)
