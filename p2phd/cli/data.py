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
    height: Annotated[
        int, typer.Option(help="Height in pixels: scenes 32 .. 1024, fields 16 .. 4096.")
    ] = 64,
    width: Annotated[
        int, typer.Option(help="Width in pixels: scenes 32 .. 2048, fields 16 .. 4096.")
    ] = 128,
    seed: Annotated[int, typer.Option(help="Same seed, same scenes.")] = 0,
    kind: Annotated[
        str, typer.Option(help="scenes (label maps and photos) | field (measured fields).")
    ] = "scenes",
    file_format: Annotated[
        str | None,
        typer.Option("--format", help="Fields: npy (default) | fits (needs p2phd[fits])."),
    ] = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Make procedural street scenes (label, instance and photo maps, car styles), or
    pairs of measured fields (--kind field: a signed field and a known transform of it).

    Example: p2phd toy toy_src --train 24 --test 4 --height 64 --width 128
    """
    from p2phd.data.toy import write_toy_dataset
    from p2phd.data.toy_fields import write_field_toy
    from p2phd.errors import ConfigError

    if kind not in ("scenes", "field"):
        raise ConfigError(f"--kind {kind}: use scenes or field")
    if kind == "scenes" and file_format is not None:
        raise ConfigError(f"--format {file_format}: for --kind field; scenes are PNG files")
    write = write_field_toy if kind == "field" else write_toy_dataset
    extra = {"file_format": file_format or "npy"} if kind == "field" else {}
    noun = "fields" if kind == "field" else "scenes"
    with progress_bar(quiet) as bar:
        task = bar.add_task(f"toy {noun}", total=train + test)
        summary = write(
            out,
            n_train=train,
            n_test=test,
            height=height,
            width=width,
            seed=seed,
            progress=lambda: bar.advance(task),
            **extra,
        )
    if as_json:
        emit_json(summary)
    elif not quiet:
        err.print(f"wrote {train} training and {test} test {noun} to {out}")


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
    in_range: Annotated[
        str | None,
        typer.Option(
            "--in-range",
            metavar="MIN,MAX",
            help="Measured fields: the inputs' saturation limits in physical units, or "
            "percentiles of the data (p1,p99); default the data's min,max.",
        ),
    ] = None,
    out_range: Annotated[
        str | None,
        typer.Option("--out-range", metavar="MIN,MAX", help="The targets' limits, as --in-range."),
    ] = None,
    in_scale: Annotated[
        str | None,
        typer.Option(
            "--in-scale", help="linear | log | asinh: the inputs' scale before the limits."
        ),
    ] = None,
    out_scale: Annotated[
        str | None, typer.Option("--out-scale", help="linear | log | asinh, for the targets.")
    ] = None,
    in_units: Annotated[
        str | None, typer.Option("--in-units", help="Measured fields: the inputs' units (G, HU).")
    ] = None,
    out_units: Annotated[
        str | None, typer.Option("--out-units", help="Measured fields: the targets' units.")
    ] = None,
    fill: Annotated[
        float | None,
        typer.Option(help="Measured fields: replace NaN and inf by this value (else refused)."),
    ] = None,
    input_nc: Annotated[
        int | None, typer.Option("--input-nc", help="Measured fields: the inputs' channels.")
    ] = None,
    output_nc: Annotated[
        int | None, typer.Option("--output-nc", help="Measured fields: the targets' channels.")
    ] = None,
    field: Annotated[
        bool | None,
        typer.Option(
            "--field", help="Read *_A/*_B as measured fields (auto for .npy, FITS, 16-bit)."
        ),
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            "--val-fraction",
            help="Hold out this fraction of train as a val split (for --eval-split val).",
        ),
    ] = None,
    overwrite: Annotated[
        bool | None,
        typer.Option("--overwrite", help="Replace DATA, if it is a dataset prepped before."),
    ] = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Pair, check and convert a dataset: label, instance and boundary maps, photos, manifest.

    Example: p2phd prep ~/cityscapes data/cityscapes --width 2048
    """
    from p2phd.config import FieldRange, PrepConfig
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
            in_range=FieldRange.parse(in_range, "--in-range") if in_range else None,
            out_range=FieldRange.parse(out_range, "--out-range") if out_range else None,
            in_scale=in_scale,
            out_scale=out_scale,
            in_units=in_units,
            out_units=out_units,
            fill=fill,
            input_nc=input_nc,
            output_nc=output_nc,
            field=field,
            val_fraction=val_fraction,
        )
    )
    with progress_bar(quiet) as bar:
        report = prepare_dataset(src, data, cfg, progress=counting(bar, "prep"))
    summary = report.to_dict()
    if as_json:
        emit_json(summary)
    elif not quiet:
        err.print(report.describe())
