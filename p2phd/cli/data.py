"""`p2phd toy` and `p2phd prep`: data to train on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from p2phd import datasets
from p2phd.cli.app import (
    AsJson,
    Quiet,
    app,
    counting,
    emit_json,
    err,
    given,
    progress_bar,
    user_errors,
)


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
    src: Annotated[
        Path, typer.Argument(help="Source dataset folder, as downloaded (see --layout).")
    ],
    data: Annotated[Path, typer.Argument(help="Prepped dataset folder to create.")],
    *,
    width: Annotated[int | None, typer.Option(help="Resize to this width.")] = None,
    multiple: Annotated[
        int | None, typer.Option(help="Round sizes to multiples of this (default 32).")
    ] = None,
    label_nc: Annotated[
        int | None,
        typer.Option("--label-nc", help="Classes (Cityscapes: 35); else inferred when left out."),
    ] = None,
    class_names: Annotated[
        Path | None,
        typer.Option("--class-names", help="File of class names: a JSON list, or one a line."),
    ] = None,
    skip_bad: Annotated[
        bool | None, typer.Option("--skip-bad", help="Skip and count bad items.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default 0: one per CPU core).")
    ] = None,
    layout: Annotated[
        str | None,
        typer.Option(
            help=" | ".join(["auto (recognised by its folders)", *datasets.layouts()]) + "."
        ),
    ] = None,
    coco_instances: Annotated[
        list[Path] | None,
        typer.Option(
            "--coco-instances",
            help="COCO-Stuff: draw instance maps from COCO's annotations/instances_*.json "
            "(give train's and val's; needs p2phd[coco]).",
        ),
    ] = None,
    palette: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="Colour-coded label maps: a JSON or CSV file of colour, id and name, or "
            "cityscapes for its own colours.",
        ),
    ] = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite", help="Replace DATA.")] = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Pair, check and convert a dataset: label, instance and boundary maps, photos, manifest.

    Example: p2phd prep ~/cityscapes data/cityscapes --width 2048
    """
    from p2phd.config import PrepConfig
    from p2phd.data.names import read_class_names
    from p2phd.data.palette import load_palette
    from p2phd.data.prep import prepare_dataset

    cfg = PrepConfig(
        **given(
            width=width,
            multiple=multiple,
            label_nc=label_nc,
            class_names=read_class_names(class_names) if class_names else None,
            skip_bad=skip_bad,
            workers=workers,
            overwrite=overwrite,
            layout=layout,
            coco_instances=tuple(map(str, coco_instances)) if coco_instances else None,
            palette=load_palette(palette) if palette else None,
        )
    )
    with progress_bar(quiet) as bar:
        report = prepare_dataset(src, data, cfg, progress=counting(bar, "prep"))
    summary = report.to_dict()
    if as_json:
        emit_json(summary)
    elif not quiet:
        err.print(report.describe())
