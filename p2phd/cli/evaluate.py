"""`p2phd evaluate`: FID, KID, segmentation accuracy and PSNR of a run or of two folders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from p2phd import datasets
from p2phd.cli.app import (
    AsJson,
    Checkpoint,
    Compile,
    Device,
    Opt,
    Precision,
    Quiet,
    Weights,
    app,
    counting,
    emit_json,
    err,
    progress_bar,
    user_errors,
)

if TYPE_CHECKING:
    from p2phd.eval.scores import Scores


def _numbers(text: str | None, count: int, option: str) -> tuple[float, ...] | None:
    from p2phd.errors import ConfigError

    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ConfigError(f"{option} {text}: give {count} numbers separated by commas")
    return values


@app.command()
@user_errors
def evaluate(
    run: Annotated[Path | None, typer.Argument(help="Run folder to evaluate.")] = None,
    data: Annotated[Path | None, typer.Argument(help="Prepped dataset with the split.")] = None,
    *,
    split: Annotated[str, Opt(help="Which split of DATA to synthesize and score.")] = "test",
    fake: Annotated[Path | None, Opt(help="Score this folder of images instead of a run.")] = None,
    real: Annotated[Path | None, Opt(help="The real photos (paired with --fake by name).")] = None,
    labels: Annotated[Path | None, Opt(help="The label maps (paired by name), for mIoU.")] = None,
    out: Annotated[Path | None, Opt(help="Folder for eval.json and index.html.")] = None,
    inception: Annotated[
        Path | None,
        Opt(help="pytorch-fid's Inception weights, for FID and KID (default: the cached one)."),
    ] = None,
    segmenter: Annotated[
        Path | None, Opt(help="TorchScript/.pt2 segmenter: [N,3,H,W] -> [N,C,h,w] logits.")
    ] = None,
    seg_range: Annotated[str, Opt(help="Segmenter input range: unit, signed or byte.")] = "unit",
    seg_mean: Annotated[str | None, Opt(help="Its per-channel mean, R,G,B (default 0).")] = None,
    seg_std: Annotated[str | None, Opt(help="Its per-channel std, R,G,B (default 1).")] = None,
    seg_size: Annotated[str | None, Opt(help="Its input size WxH (default: the image's).")] = None,
    label_map: Annotated[
        str,
        Opt(
            help="auto (the known dataset's) | identity | "
            + " | ".join(d.name for d in datasets.known() if d.label_table is not None)
            + " (the dataset's own scoring: Cityscapes' labelIds->trainIds, unlabeled ids "
            "ignored) | JSON file."
        ),
    ] = "auto",
    label_nc: Annotated[int | None, Opt(help="Classes of --labels (folder mode).")] = None,
    ignore_index: Annotated[int, Opt(help="Segmenter class left out of the scores.")] = 255,
    kid_subsets: Annotated[int, Opt(help="KID: random subsets.")] = 100,
    kid_subset_size: Annotated[int, Opt(help="KID: images per subset (at most all).")] = 1000,
    seed: Annotated[int, Opt(help="KID's subsets.")] = 0,
    width: Annotated[int | None, Opt(help="Synthesize at this width (default: the run's).")] = None,
    batch_size: Annotated[int, Opt(help="Images per forward pass.")] = 8,
    bin_size: Annotated[
        int | None,
        Opt("--bin", help="Measured fields: also score on N x N binned means (solar papers)."),
    ] = None,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    checkpoint: Checkpoint = "latest",
    weights: Weights = "auto",
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Score a run (synthesize DATA's split, compare with its photos) or two folders.

    Example: p2phd evaluate runs/512p data/cityscapes --inception
    pt_inception-2015-12-05-6726825d.pth --segmenter drn_d_105.pt --seg-mean 0.485,0.456,0.406
    --seg-std 0.229,0.224,0.225
    """
    from p2phd.errors import ConfigError
    from p2phd.eval.evaluate import EvalOptions, evaluate_folders, evaluate_run
    from p2phd.eval.segmenter import Convention
    from p2phd.runtime import DeviceOptions
    from p2phd.synth.run import Run

    size = _numbers(seg_size, 2, "--seg-size")
    convention = Convention(
        value_range=seg_range,  # type: ignore[arg-type]
        mean=_numbers(seg_mean, 3, "--seg-mean") or (0.0, 0.0, 0.0),  # type: ignore[arg-type]
        std=_numbers(seg_std, 3, "--seg-std") or (1.0, 1.0, 1.0),  # type: ignore[arg-type]
        size=(int(size[0]), int(size[1])) if size else None,
    )
    opts = EvalOptions(
        inception=inception,
        segmenter=segmenter,
        convention=convention,
        label_map=label_map,
        ignore_index=ignore_index,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        seed=seed,
        batch_size=batch_size,
    )
    devices = DeviceOptions(device, precision, compile)
    with progress_bar(quiet) as bar:
        progress = counting(bar, "evaluate")
        if fake is not None:
            if run is not None or out is None:
                raise ConfigError(
                    "--fake: score two folders with --fake, --real (and --labels) "
                    "and --out, without RUN and DATA"
                )
            report = evaluate_folders(
                fake,
                out,
                real=real,
                labels=labels,
                label_nc=label_nc or 256,
                options=opts,
                device=devices,
                progress=progress,
            )
        else:
            if run is None or data is None:
                raise ConfigError("evaluate: give RUN and DATA, or --fake and --real folders")
            if label_nc is not None:
                raise ConfigError(
                    "--label-nc: gives the classes of --labels in folder mode; a run scores "
                    "with its own classes"
                )
            folder = out or run / f"eval-{split}"
            opened = Run.open(run, checkpoint, weights)
            if opened.net.fields is not None:
                from p2phd.eval.field_eval import evaluate_field_run

                fields = evaluate_field_run(
                    opened,
                    data,
                    folder,
                    split=split,
                    width=width,
                    bin_size=bin_size,
                    image_scorers=opts,
                    device=devices,
                    progress=progress,
                )
                if as_json:
                    emit_json(fields.to_dict())
                elif not quiet:
                    _print_fields(fields.scores.rows(), fields.scores.count, fields.scores.notes)
                    err.print(f"eval.json and index.html in {fields.out}")
                return
            if bin_size is not None:
                raise ConfigError("--bin: bins measured fields; this run renders images")
            report = evaluate_run(
                opened,
                data,
                folder,
                split=split,
                width=width,
                options=opts,
                device=devices,
                progress=progress,
            )
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        _print(report.scores)
        err.print(f"eval.json and index.html in {report.out}")


def _print_fields(rows: list[tuple[str, str]], count: int, notes: list[str]) -> None:
    table = Table("score", "value", title=f"{count} fields", title_justify="left")
    for name, value in rows:
        table.add_row(name, value)
    err.print(table)
    for note in notes:
        err.print(f"note: {note}")


def _print(s: Scores) -> None:
    table = Table("score", "value", title=f"{s.count} images", title_justify="left")
    if s.fid is not None:
        table.add_row("FID", f"{s.fid:.2f}")
    if s.kid is not None:
        table.add_row("KID", f"{s.kid.mean:.4f} ± {s.kid.std:.4f}")
    for seg, who in ((s.segmentation, "synthesized"), (s.segmentation_real, "real photos")):
        if seg is not None:
            table.add_row(f"mIoU ({who})", f"{seg.miou:.4f}")
            table.add_row(f"pixel accuracy ({who})", f"{seg.pixel_accuracy:.4f}")
    if s.psnr is not None:
        table.add_row("PSNR (dB)", f"{s.psnr:.2f}")
    err.print(table)
    for note in s.notes:
        err.print(f"note: {note}")
