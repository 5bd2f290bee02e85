"""`p2phd export`: a run's generator as ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from p2phd.cli.app import AsJson, Checkpoint, Opt, Quiet, Weights, app, emit_json, err, user_errors


@app.command()
@user_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run folder of a trained generator.")],
    *,
    out: Annotated[Path, Opt("--out", help="The .onnx file to write.")],
    raw_input: Annotated[
        bool, Opt("--raw-input", help="Take G's encoded input tensor instead of the maps.")
    ] = False,
    opset: Annotated[int, Opt(help="ONNX opset (18 or newer).")] = 18,
    styles: Annotated[
        str,
        Opt(
            help="maps: the graph takes feature maps; bank: the style bank is inside and the "
            "graph takes a cluster index per instance id (feature runs).",
        ),
    ] = "maps",
    checkpoint: Checkpoint = "latest",
    weights: Weights = "auto",
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Export the generator as ONNX: label (+ instance, + feature) maps in, image out.

    Example: p2phd export runs/512p --out label2city_512p.onnx
    """
    from p2phd.synth.export import export_onnx
    from p2phd.synth.run import Run

    report = export_onnx(
        Run.open(run, checkpoint, weights), out, raw_input=raw_input, opset=opset, styles=styles
    )
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        inputs = ", ".join(f"{n} [{', '.join(d)}]" for n, d in report.inputs.items())
        err.print(f"wrote {report.path}: inputs {inputs}; output image [N, C, H, W] in [-1, 1]")
