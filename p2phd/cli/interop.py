"""`p2phd import-reference`: NVIDIA/pix2pixHD checkpoints as p2phd runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from p2phd.cli import options as o
from p2phd.cli.app import AsJson, Opt, Quiet, app, emit_json, err, given, user_errors


@app.command("import-reference")
@user_errors
def import_reference(
    ckpt_dir: Annotated[Path, typer.Argument(help="The reference's checkpoints/<name> folder.")],
    *,
    run: o.Run,
    netg: Annotated[str, Opt("--netg", help="global | local (the reference's --netG).")] = "global",
    which_epoch: Annotated[str, Opt(help="Which <epoch>_net_*.pth to read.")] = "latest",
    clusters: Annotated[
        Path | None,
        Opt(help="The reference's features_clustered_*.npy (default: the one in CKPT_DIR)."),
    ] = None,
    label_nc: Annotated[int | None, Opt("--label-nc", help="Classes (35).")] = None,
    instance: o.Instance = None,
    ngf: Annotated[int | None, Opt(help="G width (64).")] = None,
    n_downsample_global: o.NDown = None,
    n_blocks_global: o.NBlocks = None,
    n_local_enhancers: Annotated[int | None, Opt(help="Enhancers of --netg local (1).")] = None,
    n_blocks_local: Annotated[int | None, Opt(help="Blocks per enhancer (3).")] = None,
    norm: o.Norm = None,
    num_d: Annotated[int | None, Opt("--num-d", help="D scales (2).")] = None,
    n_layers_d: o.NLayersD = None,
    ndf: o.Ndf = None,
    ganfeat_loss: o.GanFeat = None,
    instance_feat: o.InstFeat = None,
    label_feat: o.LabelFeat = None,
    feat_num: o.FeatNum = None,
    nef: o.Nef = None,
    n_downsample_e: o.NDownE = None,
    vgg_loss: o.VggLoss = None,
    vgg_weights: o.VggWeights = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Import an NVIDIA/pix2pixHD checkpoint folder (G, D, E, clusters) as a p2phd run.

    Example: p2phd import-reference checkpoints/label2city_1024p --run runs/imported
    --netg local --ngf 32 --num-d 3
    """
    options = {
        k: v
        for k, v in locals().items()
        if k not in ("ckpt_dir", "run", "netg", "which_epoch", "clusters", "quiet", "as_json")
    }
    from p2phd.interop import import_reference as do_import
    from p2phd.interop import reference_config

    net, loss = reference_config(netg, given(**options))
    report = do_import(ckpt_dir, run, net, loss, which=which_epoch, clusters=clusters)
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        styles = f"; clusters of {report.clusters} classes" if report.clusters else ""
        err.print(f"imported {', '.join(report.nets)} into {report.run}{styles}")
