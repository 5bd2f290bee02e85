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
# Options shared by the training commands; None means "not given": defaults live in config.
LabelNc = Annotated[int | None, Opt("--label-nc", help="Classes (default: the data's).")]
Instance = Annotated[bool | None, Opt("--instance/--no-instance", help="Boundary map input.")]
Ngf = Annotated[int | None, Opt(help="Generator width (global 64; local: G1's / 2^N).")]
NDown = Annotated[int | None, Opt(help="G1 downsamplings (4).")]
NBlocks = Annotated[int | None, Opt(help="G1 residual blocks (9).")]
Norm = Annotated[str | None, Opt(help="instance | batch.")]
NumD = Annotated[int | None, Opt("--num-d", help="D scales (global 2, local 3).")]
NLayersD = Annotated[int | None, Opt("--n-layers-d", help="Layers per D scale (3).")]
Ndf = Annotated[int | None, Opt(help="D width (64).")]
InstFeat = Annotated[bool | None, Opt("--instance-feat", help="Per-instance features from E.")]
LabelFeat = Annotated[bool | None, Opt("--label-feat", help="Per-class features from E.")]
FeatNum = Annotated[int | None, Opt(help="Feature channels (3).")]
Nef = Annotated[int | None, Opt(help="Encoder width (16).")]
NDownE = Annotated[int | None, Opt("--n-downsample-e", help="Encoder downsamplings (4).")]
ClassDivisor = Annotated[int | None, Opt(help="Instance id i >= N has class i // N (1000).")]
GanMode = Annotated[str | None, Opt(help="lsgan | bce | hinge.")]
LambdaFeat = Annotated[float | None, Opt(help="Feature-matching and VGG weight (10).")]
GanFeat = Annotated[
    bool | None, Opt("--ganfeat-loss/--no-ganfeat-loss", help="D feature matching.")
]
VggLoss = Annotated[bool | None, Opt("--vgg-loss/--no-vgg-loss", help="VGG19 perceptual loss.")]
VggWeights = Annotated[str | None, Opt(help="Local vgg19 .pth or .safetensors.")]
Lr = Annotated[float | None, Opt(help="Adam learning rate (2e-4).")]
Beta1 = Annotated[float | None, Opt(help="Adam beta1 (0.5).")]
Epochs = Annotated[int | None, Opt(help="Epochs at constant lr (100).")]
DecayEpochs = Annotated[int | None, Opt(help="Epochs of linear decay to 0 (100).")]
BatchSize = Annotated[int | None, Opt(help="Images per step and process (1).")]
Seed = Annotated[int | None, Opt(help="Seed of weights, order and augmentation.")]
LoadWidth = Annotated[int | None, Opt(help="Resize to this width on load.")]
CropSize = Annotated[int | None, Opt(help="Random square crop.")]
Flip = Annotated[bool | None, Opt("--flip/--no-flip", help="Random horizontal flip.")]
Device = Annotated[str | None, Opt(help="auto | cpu | cuda | cuda:N.")]
Precision = Annotated[str | None, Opt(help="auto (bf16 on CUDA) | fp32 | bf16.")]
Compile = Annotated[bool | None, Opt("--compile/--no-compile", help="torch.compile G and D.")]
ChannelsLast = Annotated[bool | None, Opt("--channels-last/--no-channels-last")]
ActCkpt = Annotated[
    bool | None,
    Opt(
        "--activation-checkpointing/--no-activation-checkpointing",
        help="Recompute activations: less memory, more time.",
    ),
]
MaxSteps = Annotated[int | None, Opt(help="Stop after this many steps in total.")]
NumWorkers = Annotated[int | None, Opt(help="Data loader processes (2).")]
LogEvery = Annotated[int | None, Opt(help="Steps between log lines (50).")]
SampleEvery = Annotated[int | None, Opt(help="Steps between sample grids (500).")]
SaveEvery = Annotated[int | None, Opt(help="Steps between checkpoints (1000).")]
KeepLast = Annotated[int | None, Opt(help="Checkpoints kept (3).")]
MaxNonfinite = Annotated[int | None, Opt(help="Stop after N bad steps in a row (10).")]
DryRun = Annotated[bool, Opt("--dry-run", help="Print the resolved config and stop.")]
Data = Annotated[Path, typer.Argument(help="Prepped dataset folder (p2phd prep).")]
Run = Annotated[
    Path,
    Opt(
        "--run",
        "--run-dir",
        help="Run folder; rerunning the command "
        "resumes it. Under torchrun spell it --run-dir (torchrun would take "
        "--run for its own --run-path).",
    ),
]
NOT_CONFIG = ("data", "run", "global_run", "dry_run", "quiet", "as_json")


def config_flags(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The given training options, sorted into config sections."""
    from p2phd.config import sort_flags

    return sort_flags(given(**{k: v for k, v in options.items() if k not in NOT_CONFIG}))


@app.command("train-global")
@user_errors
def train_global(
    data: Data, *, run: Run, label_nc: LabelNc = None, instance: Instance = None,
    ngf: Ngf = None, n_downsample_global: NDown = None, n_blocks_global: NBlocks = None,
    norm: Norm = None, num_d: NumD = None, n_layers_d: NLayersD = None, ndf: Ndf = None,
    instance_feat: InstFeat = None, label_feat: LabelFeat = None, feat_num: FeatNum = None,
    nef: Nef = None, n_downsample_e: NDownE = None, class_divisor: ClassDivisor = None,
    gan_mode: GanMode = None, lambda_feat: LambdaFeat = None, ganfeat_loss: GanFeat = None,
    vgg_loss: VggLoss = None, vgg_weights: VggWeights = None, lr: Lr = None,
    beta1: Beta1 = None, epochs: Epochs = None, decay_epochs: DecayEpochs = None,
    batch_size: BatchSize = None, seed: Seed = None, load_width: LoadWidth = None,
    crop_size: CropSize = None, flip: Flip = None, device: Device = None,
    precision: Precision = None, compile: Compile = None, channels_last: ChannelsLast = None,
    activation_checkpointing: ActCkpt = None, max_steps: MaxSteps = None,
    num_workers: NumWorkers = None, log_every: LogEvery = None, sample_every: SampleEvery = None,
    save_every: SaveEvery = None, keep_last: KeepLast = None, max_nonfinite: MaxNonfinite = None,
    dry_run: DryRun = False, quiet: Quiet = False, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Train the global generator G1 with the multi-scale discriminator.

    Example: p2phd train-global data/cityscapes --run runs/512p --load-width 1024
    --vgg-weights vgg19-dcbb9e9d.pth
    """
    flags = config_flags(locals())  # first: nothing but the options is local yet
    from p2phd.stages import global_config

    cfg = global_config(data, flags)
    run_training(cfg, run, dry_run=dry_run, quiet=quiet, as_json=as_json)


@app.command("train-local")
@user_errors
def train_local(
    data: Data, *, run: Run,
    global_run: Annotated[Path, Opt("--global", help="The train-global run holding G1.")],
    n_local_enhancers: Annotated[int | None, Opt(help="Enhancers: 1 for 2048x1024, 2 for "
                                                      "4096x2048.")] = None,
    n_blocks_local: Annotated[int | None, Opt(help="Residual blocks per enhancer (3).")] = None,
    fix_global_epochs: Annotated[int | None, Opt(help="Epochs with G1 frozen before "
                                                      "train-joint (10).")] = None,
    label_nc: LabelNc = None, instance: Instance = None, ngf: Ngf = None,
    n_downsample_global: NDown = None, n_blocks_global: NBlocks = None, norm: Norm = None,
    num_d: NumD = None, n_layers_d: NLayersD = None, ndf: Ndf = None,
    instance_feat: InstFeat = None, label_feat: LabelFeat = None, feat_num: FeatNum = None,
    nef: Nef = None, n_downsample_e: NDownE = None, class_divisor: ClassDivisor = None,
    gan_mode: GanMode = None, lambda_feat: LambdaFeat = None, ganfeat_loss: GanFeat = None,
    vgg_loss: VggLoss = None, vgg_weights: VggWeights = None, lr: Lr = None,
    beta1: Beta1 = None, epochs: Epochs = None, decay_epochs: DecayEpochs = None,
    batch_size: BatchSize = None, seed: Seed = None, load_width: LoadWidth = None,
    crop_size: CropSize = None, flip: Flip = None, device: Device = None,
    precision: Precision = None, compile: Compile = None, channels_last: ChannelsLast = None,
    activation_checkpointing: ActCkpt = None, max_steps: MaxSteps = None,
    num_workers: NumWorkers = None, log_every: LogEvery = None, sample_every: SampleEvery = None,
    save_every: SaveEvery = None, keep_last: KeepLast = None, max_nonfinite: MaxNonfinite = None,
    dry_run: DryRun = False, quiet: Quiet = False, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Train the local enhancer G2 around the frozen G1 of a train-global run.

    Example: p2phd train-local data/cityscapes --run runs/1024p --global runs/512p
    --epochs 50 --decay-epochs 50 --vgg-weights vgg19-dcbb9e9d.pth
    """
    flags = config_flags(locals())  # first: nothing but the options is local yet
    from p2phd.stages import local_config

    cfg = local_config(data, global_run, flags)
    run_training(cfg, run, dry_run=dry_run, quiet=quiet, as_json=as_json, init_from=global_run)


@app.command("train-joint")
@user_errors
def train_joint(
    data: Data, *, run: Run, device: Device = None, precision: Precision = None,
    compile: Compile = None, channels_last: ChannelsLast = None,
    activation_checkpointing: ActCkpt = None, max_steps: MaxSteps = None,
    num_workers: NumWorkers = None, log_every: LogEvery = None, sample_every: SampleEvery = None,
    save_every: SaveEvery = None, keep_last: KeepLast = None, max_nonfinite: MaxNonfinite = None,
    dry_run: DryRun = False, quiet: Quiet = False, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Fine-tune G1 + G2 (+ D) of a train-local run together, continuing its schedule.

    Example: p2phd train-joint data/cityscapes --run runs/1024p
    """
    flags = config_flags(locals())  # first: nothing but the options is local yet
    from p2phd.stages import joint_config

    cfg = joint_config(data, run, flags)
    run_training(cfg, run, dry_run=dry_run, quiet=quiet, as_json=as_json)


def run_training(cfg: Any, run: Path, *, dry_run: bool, quiet: bool, as_json: bool,
                 init_from: Path | None = None) -> None:  # fmt: skip
    """Train with a progress bar, then report; a signal exits 130 (SIGINT) / 143 (SIGTERM)."""
    from p2phd.train import train

    if dry_run:
        emit_json(cfg.to_dict())
        return
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
                        err.print(f"step {r.step}/{r.total_steps} epoch {r.epoch} "
                                  f"lr {r.lr:.2e} {text}")  # fmt: skip

        result = train(cfg, run, show, init_from=init_from)
    if not result.is_main:
        raise typer.Exit(128 + result.interrupted_by if result.interrupted_by else 0)
    summary = {"run": str(result.run), "stage": result.stage, "step": result.step,
               "total_steps": result.total_steps,
               "checkpoint": str(result.checkpoint) if result.checkpoint else None,
               "samples": str(result.run / "samples" / "index.html"),
               "interrupted_by": result.interrupted_by}  # fmt: skip
    if as_json:
        emit_json(summary)
    elif not quiet:
        err.print(f"{result.stage} stage at step {result.step}/{result.total_steps}; "
                  f"checkpoint {summary['checkpoint']}; samples {summary['samples']}")  # fmt: skip
        if result.stage == "local" and result.step >= result.total_steps:
            err.print(f"next, G1 and G2 together: p2phd train-joint DATA --run {run}")
    if result.interrupted_by is not None:
        err.print(
            f"stopped by signal {result.interrupted_by} after saving step {result.step}; "
            "rerun the same command to resume"
        )
        raise typer.Exit(128 + result.interrupted_by)


@app.command("encode-features")
@user_errors
def encode_features(
    run: Annotated[Path, typer.Argument(help="Run trained with --instance-feat/--label-feat.")],
    data: Data,
    *,
    split: Annotated[str, Opt(help="Which split of DATA to encode.")] = "train",
    batch_size: Annotated[int, Opt(help="Images per forward pass.")] = 4,
    device: Annotated[str, Opt(help="auto | cpu | cuda | cuda:N.")] = "auto",
    precision: Annotated[str, Opt(help="auto (bf16 on CUDA) | fp32 | bf16.")] = "auto",
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:  # fmt: skip
    """Encode every instance of the training images with the run's E, per class.

    Example: p2phd encode-features runs/512p_feat data/cityscapes
    """
    from p2phd.features import encode_features as encode

    with progress_bar(quiet) as bar:
        task = bar.add_task("encode features", total=None)
        report = encode(run, data, split=split, batch_size=batch_size, device=device,
                        precision=precision,
                        progress=lambda done, total: bar.update(task, completed=done,
                                                                total=total))  # fmt: skip
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        counts = ", ".join(f"{c}: {n}" for c, n in report.classes.items())
        err.print(f"encoded {report.images} images into {report.path} (instances per class: "
                  f"{counts})")  # fmt: skip


def cluster(
    run: Annotated[Path, typer.Argument(help="Run with features.safetensors.")],
    *,
    k: Annotated[int, Opt("--k", help="Clusters per class (at most its instances).")] = 10,
    min_area: Annotated[float, Opt(help="Leave out instances under this fraction of their "
                                        "image (the reference's 1/64).")] = 1 / 64,
    n_init: Annotated[int, Opt(help="k-means restarts.")] = 10,
    seed: Annotated[int, Opt(help="k-means random_state.")] = 0,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:  # fmt: skip
    """Run k-means per class over the encoded instance features.

    Example: p2phd cluster runs/512p_feat --k 10
    """
    from p2phd.features import cluster_features

    report = cluster_features(run, k=k, min_area=min_area, n_init=n_init, seed=seed)
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        done = ", ".join(f"{c}: {v['clusters']}" for c, v in report.clusters.items())
        err.print(f"clusters per class ({done}) in {report.path}")
        for c, why in report.skipped.items():
            err.print(f"class {c} has no clusters: {why}")


app.command("cluster")(user_errors(cluster))
app.command("cluster-features")(user_errors(cluster))  # the reference's name for it


@app.command()
@user_errors
def synthesize(
    run: Annotated[Path, typer.Argument(help="Run folder of a trained generator.")],
    inputs: Annotated[list[Path], typer.Argument(help="Label maps, or folders of them.")],
    *,
    out: Annotated[Path, Opt("--out", help="Folder for the images and index.html.")],
    inst: Annotated[list[Path] | None, Opt("--inst", help="Instance maps or folders "
                                                           "(paired by file name).")] = None,
    style: Annotated[str | None, Opt(help="random (default) | cluster=I: each instance's "
                                          "cluster of its class.")] = None,
    style_map: Annotated[Path | None, Opt(help="JSON: per instance id or class, a cluster "
                                               "index or a feature vector.")] = None,
    style_from: Annotated[list[Path] | None, Opt("--style-from", help="Photos (or folders, "
                          "paired by name) whose encoded instances give the styles.")] = None,
    variations: Annotated[int, Opt(help="Images per label map, in different styles.")] = 1,
    vary: Annotated[str | None, Opt(help="What changes across variations: class:C or "
                                         "instance:ID (default: everything).")] = None,
    relabel: Annotated[list[str] | None, Opt("--relabel", help="SRC:DST: class SRC becomes "
                                                              "DST (repeatable).")] = None,
    relabel_instance: Annotated[list[str] | None, Opt("--relabel-instance", help="ID:DST: "
                                "instance ID becomes class DST (repeatable).")] = None,
    seed: Annotated[int, Opt(help="Seed of the random styles.")] = 0,
    batch_size: Annotated[int, Opt(help="Images per forward pass.")] = 4,
    width: Annotated[int | None, Opt(help="Resize label maps to this width.")] = None,
    device: Annotated[str, Opt(help="auto | cpu | cuda | cuda:N.")] = "auto",
    precision: Annotated[str, Opt(help="auto (bf16 on CUDA) | fp32 | bf16.")] = "auto",
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:  # fmt: skip
    """Turn label maps (+ instance maps) into images; pick and edit instance styles.

    Example: p2phd synthesize runs/512p data/cityscapes/test/label --inst
    data/cityscapes/test/inst --out results/512p --variations 4 --vary class:26
    """
    from p2phd.synth import make_options
    from p2phd.synth import synthesize as run_synthesis

    options = make_options(
        run, style=style, style_map=style_map, vary=vary, seed=seed, relabels=relabel or (),
        relabel_instances=relabel_instance or (), style_from=tuple(style_from or ()),
        variations=variations, batch_size=batch_size, width=width, device=device,
        precision=precision,
    )  # fmt: skip
    with progress_bar(quiet) as bar:
        task = bar.add_task("synthesize", total=None)
        report = run_synthesis(
            run, inputs, out, inst=inst or (), options=options,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        err.print(f"wrote {len(report.images)} images to {report.out}; open {report.index}")


@app.command("import-reference")
@user_errors
def import_reference(
    ckpt_dir: Annotated[Path, typer.Argument(help="The reference's checkpoints/<name> folder.")],
    *,
    run: Run,
    netg: Annotated[str, Opt("--netg", help="global | local (the reference's --netG).")] = "global",
    which_epoch: Annotated[str, Opt(help="Which <epoch>_net_*.pth to read.")] = "latest",
    clusters: Annotated[Path | None, Opt(help="The reference's features_clustered_*.npy "
                                              "(default: the one in CKPT_DIR).")] = None,
    label_nc: Annotated[int | None, Opt("--label-nc", help="Classes (35).")] = None,
    instance: Instance = None, ngf: Annotated[int | None, Opt(help="G width (64).")] = None,
    n_downsample_global: NDown = None, n_blocks_global: NBlocks = None,
    n_local_enhancers: Annotated[int | None, Opt(help="Enhancers of --netg local (1).")] = None,
    n_blocks_local: Annotated[int | None, Opt(help="Blocks per enhancer (3).")] = None,
    norm: Norm = None, num_d: Annotated[int | None, Opt("--num-d", help="D scales (2).")] = None,
    n_layers_d: NLayersD = None, ndf: Ndf = None, ganfeat_loss: GanFeat = None,
    instance_feat: InstFeat = None, label_feat: LabelFeat = None, feat_num: FeatNum = None,
    nef: Nef = None, n_downsample_e: NDownE = None, vgg_loss: VggLoss = None,
    vgg_weights: VggWeights = None, quiet: Quiet = False, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Import an NVIDIA/pix2pixHD checkpoint folder (G, D, E, clusters) as a p2phd run.

    Example: p2phd import-reference checkpoints/label2city_1024p --run runs/imported
    --netg local --ngf 32 --num-d 3
    """
    options = {k: v for k, v in locals().items()
               if k not in ("ckpt_dir", "run", "netg", "which_epoch", "clusters", "quiet",
                            "as_json")}  # fmt: skip
    from p2phd.interop import import_reference as do_import
    from p2phd.interop import reference_config

    net, loss = reference_config(netg, given(**options))
    report = do_import(ckpt_dir, run, net, loss, which=which_epoch, clusters=clusters)
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        styles = f"; clusters of {report.clusters} classes" if report.clusters else ""
        err.print(f"imported {', '.join(report.nets)} into {report.run}{styles}")


def main() -> None:
    """Console-script entry point."""
    app()
