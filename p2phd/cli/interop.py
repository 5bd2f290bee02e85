"""`p2phd import-reference`: NVIDIA/pix2pixHD checkpoints as p2phd runs."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from p2phd.cli.app import AsJson, Opt, Quiet, app, emit_json, err, user_errors
from p2phd.cli.flags import sort_given, with_signature

LEADING = [
    inspect.Parameter(
        "ckpt_dir",
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=Annotated[
            Path, typer.Argument(help="The reference's checkpoints/<name> folder.")
        ],
    ),
    inspect.Parameter(
        "run",
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[Path, Opt("--run", "--run-dir", help="The run folder to create.")],
    ),
    inspect.Parameter(
        "netg",
        inspect.Parameter.KEYWORD_ONLY,
        default="global",
        annotation=Annotated[str, Opt("--netg", help="global | local (the reference's --netG).")],
    ),
    inspect.Parameter(
        "which_epoch",
        inspect.Parameter.KEYWORD_ONLY,
        default="latest",
        annotation=Annotated[str, Opt(help="Which <epoch>_net_*.pth to read.")],
    ),
    inspect.Parameter(
        "clusters",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None,
            Opt(help="The reference's features_clustered_*.npy (default: the one in CKPT_DIR)."),
        ],
    ),
    inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Quiet),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=AsJson),
]


def import_reference(
    ckpt_dir: Path,
    run: Path,
    netg: str = "global",
    which_epoch: str = "latest",
    clusters: Path | None = None,
    quiet: bool = False,
    as_json: bool = False,
    **options: Any,
) -> None:
    """Import an NVIDIA/pix2pixHD checkpoint folder (G, D, E, clusters) as a p2phd run.

    Give the reference's options that decided the architecture (its defaults otherwise:
    label_nc 35, ngf 64, 1 enhancer for --netg local, num_D 2).

    Example: p2phd import-reference checkpoints/label2city_1024p --run runs/imported
    --netg local --ngf 32 --num-d 3
    """
    from p2phd.interop import import_reference as do_import
    from p2phd.interop import reference_config

    cfg = reference_config(netg, sort_given("I", options))
    report = do_import(ckpt_dir, run, cfg, which=which_epoch, clusters=clusters)
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        styles = f"; clusters of {report.clusters} classes" if report.clusters else ""
        err.print(f"imported {', '.join(report.nets)} into {report.run}{styles}")


app.command("import-reference")(user_errors(with_signature(import_reference, LEADING, "I")))
