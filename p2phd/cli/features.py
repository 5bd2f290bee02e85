"""`p2phd encode-features` and `p2phd cluster` (also `cluster-features`)."""

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


@app.command("encode-features")
@user_errors
def encode_features(
    run: Annotated[Path, typer.Argument(help="Run trained with --instance-feat/--label-feat.")],
    data: Annotated[Path, typer.Argument(help="Prepped dataset folder (p2phd prep).")],
    *,
    split: Annotated[str, Opt(help="Which split of DATA to encode.")] = "train",
    batch_size: Annotated[int, Opt(help="Images per forward pass.")] = 4,
    width: Annotated[
        int | None, Opt(help="Resize to this width (default: the run's training width).")
    ] = None,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    checkpoint: Checkpoint = "latest",
    weights: Weights = "auto",
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Encode every instance of the training images with the run's E, per class.

    Example: p2phd encode-features runs/512p_feat data/cityscapes
    """
    from p2phd.runtime import DeviceOptions
    from p2phd.synth.features import encode_features as encode
    from p2phd.synth.run import Run

    opened = Run.open(run, checkpoint, weights)
    with progress_bar(quiet) as bar:
        report = encode(
            opened,
            data,
            split=split,
            batch_size=batch_size,
            device=DeviceOptions(device, precision, compile),
            width=width,
            progress=counting(bar, "encode features"),
        )
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        counts = ", ".join(f"{report.names[c]}: {n}" for c, n in report.classes.items())
        err.print(
            f"encoded {report.images} images into {report.path} (instances per class: {counts})"
        )


def cluster(
    run: Annotated[Path, typer.Argument(help="Run with features.safetensors.")],
    *,
    k: Annotated[int, Opt("--k", help="Clusters per class (at most its instances).")] = 10,
    min_area: Annotated[
        float,
        Opt(help="Leave out instances under this fraction of their image (the reference's 1/64)."),
    ] = 1 / 64,
    n_init: Annotated[int, Opt(help="k-means restarts.")] = 10,
    seed: Annotated[int, Opt(help="k-means random_state.")] = 0,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Run k-means per class over the encoded instance features.

    Example: p2phd cluster runs/512p_feat --k 10
    """
    from p2phd.synth.features import cluster_features

    report = cluster_features(run, k=k, min_area=min_area, n_init=n_init, seed=seed)
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        done = ", ".join(f"{v['name']}: {v['clusters']}" for v in report.clusters.values())
        err.print(f"clusters per class ({done}) in {report.path}")
        for c, why in report.skipped.items():
            err.print(f"{report.names[c]} (class {c}) has no clusters: {why}")


app.command("cluster")(user_errors(cluster))
app.command("cluster-features", hidden=True)(user_errors(cluster))  # the reference's name
