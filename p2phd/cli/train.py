"""`p2phd train-global`, `train-local` and `train-joint`: the three training stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from p2phd.cli import options as o
from p2phd.cli.app import AsJson, Opt, Quiet, app, emit_json, err, given, progress_bar, user_errors

NOT_CONFIG = ("data", "run", "global_run", "dry_run", "quiet", "as_json")


def config_flags(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The given training options, sorted into config sections."""
    from p2phd.config import sort_flags

    return sort_flags(given(**{k: v for k, v in options.items() if k not in NOT_CONFIG}))


@app.command("train-global")
@user_errors
def train_global(
    data: o.Data,
    *,
    run: o.Run,
    label_nc: o.LabelNc = None,
    instance: o.Instance = None,
    ngf: o.Ngf = None,
    n_downsample_global: o.NDown = None,
    n_blocks_global: o.NBlocks = None,
    norm: o.Norm = None,
    num_d: o.NumD = None,
    n_layers_d: o.NLayersD = None,
    ndf: o.Ndf = None,
    instance_feat: o.InstFeat = None,
    label_feat: o.LabelFeat = None,
    feat_num: o.FeatNum = None,
    nef: o.Nef = None,
    n_downsample_e: o.NDownE = None,
    class_divisor: o.ClassDivisor = None,
    gan_mode: o.GanMode = None,
    lambda_feat: o.LambdaFeat = None,
    ganfeat_loss: o.GanFeat = None,
    vgg_loss: o.VggLoss = None,
    vgg_weights: o.VggWeights = None,
    lr: o.Lr = None,
    beta1: o.Beta1 = None,
    epochs: o.Epochs = None,
    decay_epochs: o.DecayEpochs = None,
    batch_size: o.BatchSize = None,
    seed: o.Seed = None,
    load_width: o.LoadWidth = None,
    crop_size: o.CropSize = None,
    flip: o.Flip = None,
    device: o.Device = None,
    precision: o.Precision = None,
    compile: o.Compile = None,
    channels_last: o.ChannelsLast = None,
    activation_checkpointing: o.ActCkpt = None,
    max_steps: o.MaxSteps = None,
    num_workers: o.NumWorkers = None,
    log_every: o.LogEvery = None,
    sample_every: o.SampleEvery = None,
    save_every: o.SaveEvery = None,
    keep_last: o.KeepLast = None,
    max_nonfinite: o.MaxNonfinite = None,
    dry_run: o.DryRun = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
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
    data: o.Data,
    *,
    run: o.Run,
    global_run: Annotated[Path, Opt("--global", help="The train-global run holding G1.")],
    n_local_enhancers: Annotated[
        int | None, Opt(help="Enhancers: 1 for 2048x1024, 2 for 4096x2048.")
    ] = None,
    n_blocks_local: Annotated[int | None, Opt(help="Residual blocks per enhancer (3).")] = None,
    fix_global_epochs: Annotated[
        int | None, Opt(help="Epochs with G1 frozen before train-joint (10).")
    ] = None,
    label_nc: o.LabelNc = None,
    instance: o.Instance = None,
    ngf: o.Ngf = None,
    n_downsample_global: o.NDown = None,
    n_blocks_global: o.NBlocks = None,
    norm: o.Norm = None,
    num_d: o.NumD = None,
    n_layers_d: o.NLayersD = None,
    ndf: o.Ndf = None,
    instance_feat: o.InstFeat = None,
    label_feat: o.LabelFeat = None,
    feat_num: o.FeatNum = None,
    nef: o.Nef = None,
    n_downsample_e: o.NDownE = None,
    class_divisor: o.ClassDivisor = None,
    gan_mode: o.GanMode = None,
    lambda_feat: o.LambdaFeat = None,
    ganfeat_loss: o.GanFeat = None,
    vgg_loss: o.VggLoss = None,
    vgg_weights: o.VggWeights = None,
    lr: o.Lr = None,
    beta1: o.Beta1 = None,
    epochs: o.Epochs = None,
    decay_epochs: o.DecayEpochs = None,
    batch_size: o.BatchSize = None,
    seed: o.Seed = None,
    load_width: o.LoadWidth = None,
    crop_size: o.CropSize = None,
    flip: o.Flip = None,
    device: o.Device = None,
    precision: o.Precision = None,
    compile: o.Compile = None,
    channels_last: o.ChannelsLast = None,
    activation_checkpointing: o.ActCkpt = None,
    max_steps: o.MaxSteps = None,
    num_workers: o.NumWorkers = None,
    log_every: o.LogEvery = None,
    sample_every: o.SampleEvery = None,
    save_every: o.SaveEvery = None,
    keep_last: o.KeepLast = None,
    max_nonfinite: o.MaxNonfinite = None,
    dry_run: o.DryRun = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
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
    data: o.Data,
    *,
    run: o.Run,
    device: o.Device = None,
    precision: o.Precision = None,
    compile: o.Compile = None,
    channels_last: o.ChannelsLast = None,
    activation_checkpointing: o.ActCkpt = None,
    max_steps: o.MaxSteps = None,
    num_workers: o.NumWorkers = None,
    log_every: o.LogEvery = None,
    sample_every: o.SampleEvery = None,
    save_every: o.SaveEvery = None,
    keep_last: o.KeepLast = None,
    max_nonfinite: o.MaxNonfinite = None,
    dry_run: o.DryRun = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Fine-tune G1 + G2 (+ D) of a train-local run together, continuing its schedule.

    Example: p2phd train-joint data/cityscapes --run runs/1024p
    """
    flags = config_flags(locals())  # first: nothing but the options is local yet
    from p2phd.stages import joint_config

    cfg = joint_config(data, run, flags)
    run_training(cfg, run, dry_run=dry_run, quiet=quiet, as_json=as_json)


def run_training(
    cfg: Any, run: Path, *, dry_run: bool, quiet: bool, as_json: bool, init_from: Path | None = None
) -> None:
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
                if r.resumed_from is not None and not quiet:
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
        err.print(
            f"{result.stage} stage at step {result.step}/{result.total_steps}; "
            f"checkpoint {summary['checkpoint']}; samples {summary['samples']}"
        )
        if result.stage == "local" and result.step >= result.total_steps:
            err.print(f"next, G1 and G2 together: p2phd train-joint DATA --run {run}")
    if result.interrupted_by is not None:
        err.print(
            f"stopped by signal {result.interrupted_by} after saving step {result.step}; "
            "rerun the same command to resume"
        )
        raise typer.Exit(128 + result.interrupted_by)
