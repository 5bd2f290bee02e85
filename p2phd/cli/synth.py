"""`p2phd synthesize`: label maps to images, with styles and edits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    style: Annotated[
        str | None, Opt(help="random (default) | cluster=I: each instance's cluster of its class.")
    ] = None,
    style_map: Annotated[
        Path | None,
        Opt(help="JSON: per instance id or class, a cluster index or a feature vector."),
    ] = None,
    style_from: Annotated[
        list[Path] | None,
        Opt(
            "--style-from",
            help="Photos (or folders, paired by name) whose encoded instances give the styles.",
        ),
    ] = None,
    variations: Annotated[int, Opt(help="Images per label map, in different styles.")] = 1,
    vary: Annotated[
        str | None,
        Opt(help="What changes across variations: class:C or instance:ID (default: everything)."),
    ] = None,
    relabel: Annotated[
        list[str] | None, Opt("--relabel", help="SRC:DST: class SRC becomes DST (repeatable).")
    ] = None,
    relabel_instance: Annotated[
        list[str] | None,
        Opt("--relabel-instance", help="ID:DST: instance ID becomes class DST (repeatable)."),
    ] = None,
    seed: Annotated[int, Opt(help="Seed of the random styles.")] = 0,
    batch_size: Annotated[int, Opt(help="Images per forward pass.")] = 4,
    image_format: Annotated[str, Opt("--format", help="png (lossless) | jpg | webp.")] = "png",
    quality: Annotated[int, Opt(help="Quality of jpg and webp images (1-100).")] = 95,
    save_labels: Annotated[
        bool,
        Opt(
            "--save-labels/--no-save-labels",
            help="Write the coloured label maps (labels/) the page shows beside the images.",
        ),
    ] = True,
    workers: Annotated[
        int, Opt(help="Reader and writer threads each (-1: one per core; 0: no threads).")
    ] = -1,
    width: Annotated[int | None, Opt(help="Resize label maps to this width.")] = None,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    checkpoint: Checkpoint = "latest",
    weights: Weights = "auto",
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Turn label maps (+ instance maps) into images; pick and edit instance styles.

    Example: p2phd synthesize runs/512p data/cityscapes/test/label --inst
    data/cityscapes/test/inst --out results/512p --variations 4 --vary class:26
    """
    from p2phd.runtime import DeviceOptions
    from p2phd.synth.folder import make_options
    from p2phd.synth.folder import synthesize as run_synthesis
    from p2phd.synth.run import Run
    from p2phd.synth.synthesizer import Synthesizer

    opened = Run.open(run, checkpoint, weights)
    options = make_options(
        opened,
        style=style,
        style_map=style_map,
        vary=vary,
        seed=seed,
        relabels=relabel or (),
        relabel_instances=relabel_instance or (),
        style_from=tuple(style_from or ()),
        variations=variations,
        batch_size=batch_size,
        width=width,
        image_format=image_format,
        quality=quality,
        save_labels=save_labels,
        workers=workers,
    )
    synth = Synthesizer(opened, DeviceOptions(device, precision, compile))
    with progress_bar(quiet) as bar:
        report = run_synthesis(
            synth,
            inputs,
            out,
            inst=inst or (),
            options=options,
            progress=counting(bar, "synthesize"),
        )
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        for note in report.notes:
            err.print(f"note: {note}")
        err.print(f"wrote {len(report.images)} {report.noun} to {report.out}; open {report.index}")
