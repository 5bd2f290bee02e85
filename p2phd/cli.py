"""The `p2phd` command line: one thin typer command per subcommand.

Each command parses its options, builds the frozen config, calls one core function and shows
its progress. Known problems (`P2phdError`) print one line and exit with status 2; anything
else is a bug and exits with status 1 and a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from p2phd.errors import P2phdError

app = typer.Typer(
    name="p2phd",
    help="pix2pixHD as a command-line toolkit: label maps (+ instance maps) -> photos.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True, highlight=False)  # one line per message

P = ParamSpec("P")
R = TypeVar("R")


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a `P2phdError` into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except P2phdError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None

    return wrapper


def given(**options: Any) -> dict[str, Any]:
    """The options the user actually gave (typer defaults are None): defaults stay in config."""
    return {k: v for k, v in options.items() if v is not None}


class RateColumn(ProgressColumn):
    """Steps per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} it/s" if speed else "-.-- it/s", style="progress.data.speed")


@contextmanager
def progress_bar(quiet: bool, *fields: str) -> Iterator[Progress]:
    """A rich progress bar with rate and ETA (hidden with --quiet or when stderr is no TTY)."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *(TextColumn(f"{{task.fields[{f}]}}") for f in fields),
    ]
    with Progress(*columns, console=err, disable=quiet, transient=False) as bar:
        yield bar


def emit_json(data: dict[str, Any]) -> None:
    """The machine-readable summary asked for with --json, on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]


@app.command()
@user_errors
def toy(
    out: Annotated[Path, typer.Argument(help="Folder to create, in the reference layout.")],
    *,
    train: Annotated[int, typer.Option(help="Training scenes.")] = 24,
    test: Annotated[int, typer.Option(help="Test scenes.")] = 4,
    height: Annotated[int, typer.Option(help="Scene height in pixels (64 .. 1024).")] = 64,
    width: Annotated[int, typer.Option(help="Scene width in pixels (128 .. 2048).")] = 128,
    seed: Annotated[int, typer.Option(help="Same seed, same scenes.")] = 0,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Make procedural street scenes: label, instance and photo maps, and car styles.

    Example: p2phd toy toy_src --train 24 --test 4 --height 64 --width 128
    """
    from p2phd.data.toy import write_toy_dataset

    with progress_bar(quiet) as bar:
        task = bar.add_task("toy scenes", total=train + test)
        summary = write_toy_dataset(
            out,
            n_train=train,
            n_test=test,
            height=height,
            width=width,
            seed=seed,
            progress=lambda: bar.advance(task),
        )
    if as_json:
        emit_json(summary)
    elif not quiet:
        err.print(f"wrote {train} training and {test} test scenes to {out}")


@app.command()
@user_errors
def prep(
    src: Annotated[Path, typer.Argument(help="Source: reference layout or raw Cityscapes.")],
    data: Annotated[Path, typer.Argument(help="Prepped dataset folder to create.")],
    *,
    width: Annotated[int | None, typer.Option(help="Resize to this width.")] = None,
    multiple: Annotated[
        int | None, typer.Option(help="Round sizes to multiples of this (default 32).")
    ] = None,
    label_nc: Annotated[
        int | None, typer.Option("--label-nc", help="Classes; inferred when left out.")
    ] = None,
    skip_bad: Annotated[
        bool | None, typer.Option("--skip-bad", help="Skip and count bad items.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel worker processes.")] = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite", help="Replace DATA.")] = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Pair, check and convert a dataset: label, instance and boundary maps, photos, manifest.

    Example: p2phd prep ~/cityscapes data/cityscapes --width 2048
    """
    from p2phd.config import PrepConfig
    from p2phd.data.prep import prepare_dataset

    cfg = PrepConfig(
        **given(
            width=width,
            multiple=multiple,
            label_nc=label_nc,
            skip_bad=skip_bad,
            workers=workers,
            overwrite=overwrite,
        )
    )
    with progress_bar(quiet) as bar:
        task = bar.add_task("prep", total=None)
        report = prepare_dataset(
            src,
            data,
            cfg,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    summary = report.to_dict()
    if as_json:
        emit_json(summary)
    elif not quiet:
        err.print(report.describe())


Opt = typer.Option


@app.command("train-global")
@user_errors
def train_global(
    data: Annotated[Path, typer.Argument(help="Prepped dataset folder (p2phd prep).")],
    *,
    run: Annotated[Path, Opt("--run", help="Run folder; rerunning the command resumes it.")],
    label_nc: Annotated[
        int | None, Opt("--label-nc", help="Classes (default: the data's).")
    ] = None,
    instance: Annotated[
        bool | None, Opt("--instance/--no-instance", help="Use the instance-boundary map.")
    ] = None,
    ngf: Annotated[int | None, Opt(help="Generator base width (64).")] = None,
    n_downsample_global: Annotated[int | None, Opt(help="Generator downsamplings (4).")] = None,
    n_blocks_global: Annotated[int | None, Opt(help="Generator residual blocks (9).")] = None,
    norm: Annotated[str | None, Opt(help="instance | batch.")] = None,
    num_d: Annotated[int | None, Opt("--num-d", help="Discriminator scales (2).")] = None,
    n_layers_d: Annotated[int | None, Opt("--n-layers-d", help="Layers per scale (3).")] = None,
    ndf: Annotated[int | None, Opt(help="Discriminator base width (64).")] = None,
    gan_mode: Annotated[str | None, Opt(help="lsgan | bce | hinge.")] = None,
    lambda_feat: Annotated[float | None, Opt(help="Feature-matching and VGG weight (10).")] = None,
    ganfeat_loss: Annotated[
        bool | None, Opt("--ganfeat-loss/--no-ganfeat-loss", help="Discriminator feature matching.")
    ] = None,
    vgg_loss: Annotated[
        bool | None, Opt("--vgg-loss/--no-vgg-loss", help="VGG19 perceptual loss.")
    ] = None,
    vgg_weights: Annotated[str | None, Opt(help="Local vgg19 .pth or .safetensors.")] = None,
    lr: Annotated[float | None, Opt(help="Adam learning rate (2e-4).")] = None,
    beta1: Annotated[float | None, Opt(help="Adam beta1 (0.5).")] = None,
    epochs: Annotated[int | None, Opt(help="Epochs at constant lr (100).")] = None,
    decay_epochs: Annotated[int | None, Opt(help="Epochs of linear decay to 0 (100).")] = None,
    batch_size: Annotated[int | None, Opt(help="Images per step (1).")] = None,
    seed: Annotated[int | None, Opt(help="Seed of weights, order and augmentation.")] = None,
    load_width: Annotated[int | None, Opt(help="Resize to this width on load.")] = None,
    crop_size: Annotated[int | None, Opt(help="Random square crop.")] = None,
    flip: Annotated[bool | None, Opt("--flip/--no-flip", help="Random horizontal flip.")] = None,
    device: Annotated[str | None, Opt(help="auto | cpu | cuda | cuda:N.")] = None,
    precision: Annotated[str | None, Opt(help="auto (bf16 on CUDA) | fp32 | bf16.")] = None,
    compile: Annotated[
        bool | None, Opt("--compile/--no-compile", help="torch.compile G and D.")
    ] = None,
    channels_last: Annotated[bool | None, Opt("--channels-last/--no-channels-last")] = None,
    max_steps: Annotated[int | None, Opt(help="Stop after this many steps in total.")] = None,
    num_workers: Annotated[int | None, Opt(help="Data loader processes (2).")] = None,
    log_every: Annotated[int | None, Opt(help="Steps between log lines (50).")] = None,
    sample_every: Annotated[int | None, Opt(help="Steps between sample grids (500).")] = None,
    save_every: Annotated[int | None, Opt(help="Steps between checkpoints (1000).")] = None,
    keep_last: Annotated[int | None, Opt(help="Checkpoints kept (3).")] = None,
    max_nonfinite: Annotated[int | None, Opt(help="Stop after N bad steps in a row.")] = None,
    dry_run: Annotated[bool, Opt("--dry-run", help="Print the resolved config and stop.")] = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Train the global generator G1 with the multi-scale discriminator.

    Example: p2phd train-global data/cityscapes --run runs/512p --load-width 1024
    --vgg-weights vgg19-dcbb9e9d.pth
    """
    from p2phd.train import build_config

    flags = {
        "net": given(
            label_nc=label_nc,
            instance=instance,
            ngf=ngf,
            norm=norm,
            n_downsample_global=n_downsample_global,
            n_blocks_global=n_blocks_global,
            num_d=num_d,
            n_layers_d=n_layers_d,
            ndf=ndf,
        ),
        "loss": given(
            gan_mode=gan_mode,
            lambda_feat=lambda_feat,
            ganfeat_loss=ganfeat_loss,
            vgg_loss=vgg_loss,
            vgg_weights=vgg_weights,
        ),
        "data": given(load_width=load_width, crop_size=crop_size, flip=flip),
        "optim": given(
            lr=lr,
            beta1=beta1,
            epochs=epochs,
            decay_epochs=decay_epochs,
            batch_size=batch_size,
            seed=seed,
        ),
        "run": given(
            device=device,
            precision=precision,
            compile=compile,
            channels_last=channels_last,
            max_steps=max_steps,
            num_workers=num_workers,
            log_every=log_every,
            sample_every=sample_every,
            save_every=save_every,
            keep_last=keep_last,
            max_nonfinite=max_nonfinite,
        ),
    }
    cfg = build_config("global", data, flags)
    if dry_run:
        emit_json(cfg.to_dict())
        return
    run_training(cfg, run, quiet=quiet, as_json=as_json)


def run_training(cfg: Any, run: Path, *, quiet: bool, as_json: bool) -> None:
    """Train with a progress bar, then report; a signal exits 130 (SIGINT) / 143 (SIGTERM)."""
    from p2phd.train import train

    with progress_bar(quiet, "losses") as bar:
        task = bar.add_task(f"train {cfg.stage}", total=None, losses="")
        plain = not quiet and not err.is_terminal

        def show(r: Any) -> None:
            if r.event == "start":
                bar.update(task, total=r.total_steps, completed=r.step)
                if r.resumed_from is not None:
                    bar.console.print(f"resuming {run} from step {r.resumed_from}")
            elif r.event == "step":
                bar.update(task, completed=r.step)
                if r.losses is not None:
                    text = " ".join(f"{k} {v:.3f}" for k, v in r.losses.items())
                    bar.update(task, losses=text)
                    if plain:
                        err.print(
                            f"step {r.step}/{r.total_steps} epoch {r.epoch} lr {r.lr:.2e} {text}"
                        )

        result = train(cfg, run, show)
    summary = {
        "run": str(result.run),
        "step": result.step,
        "total_steps": result.total_steps,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "samples": str(result.run / "samples" / "index.html"),
        "interrupted_by": result.interrupted_by,
    }
    if as_json:
        emit_json(summary)
    elif not quiet:
        err.print(
            f"step {result.step}/{result.total_steps}; checkpoint {summary['checkpoint']}; "
            f"samples {summary['samples']}"
        )
    if result.interrupted_by is not None:
        err.print(
            f"stopped by signal {result.interrupted_by} after saving step {result.step}; "
            "rerun the same command to resume"
        )
        raise typer.Exit(128 + result.interrupted_by)


@app.command()
@user_errors
def synthesize(
    run: Annotated[Path, typer.Argument(help="Run folder of a trained generator.")],
    inputs: Annotated[list[Path], typer.Argument(help="Label maps, or folders of them.")],
    *,
    out: Annotated[Path, Opt("--out", help="Folder for the images and index.html.")],
    inst: Annotated[
        list[Path] | None, Opt("--inst", help="Instance maps or folders (paired by file name).")
    ] = None,
    batch_size: Annotated[int, Opt(help="Images per forward pass.")] = 4,
    width: Annotated[int | None, Opt(help="Resize label maps to this width.")] = None,
    device: Annotated[str, Opt(help="auto | cpu | cuda | cuda:N.")] = "auto",
    precision: Annotated[str, Opt(help="auto (bf16 on CUDA) | fp32 | bf16.")] = "auto",
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Turn label maps (+ instance maps) into images with a trained generator.

    Example: p2phd synthesize runs/512p data/cityscapes/test/label --inst
    data/cityscapes/test/inst --out results/512p
    """
    from p2phd.synth import synthesize as run_synthesis

    with progress_bar(quiet) as bar:
        task = bar.add_task("synthesize", total=None)
        report = run_synthesis(
            run,
            inputs,
            out,
            inst=inst or (),
            batch_size=batch_size,
            width=width,
            device=device,
            precision=precision,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        err.print(f"wrote {len(report.images)} images to {report.out}; open {report.index}")


def main() -> None:
    """Console-script entry point."""
    app()
