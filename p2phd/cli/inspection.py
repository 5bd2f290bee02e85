"""`p2phd inspect`: what a label map, a run or a prepped dataset holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from p2phd.cli.app import AsJson, Checkpoint, Opt, app, emit_json, user_errors

out = Console(highlight=False, emoji=False)


@app.command("inspect")
@user_errors
def inspect(
    path: Annotated[Path, typer.Argument(help="A label map, a run folder or a prepped dataset.")],
    *,
    inst: Annotated[Path | None, Opt("--inst", help="The label map's instance map.")] = None,
    classes: Annotated[
        Path | None,
        Opt(help="Name the classes as this run or dataset does (default: found beside LABEL)."),
    ] = None,
    checkpoint: Checkpoint = "latest",
    as_json: AsJson = False,
) -> None:
    """Show the classes and objects of a label map (the ids edits take), a run, or a dataset.

    Example: p2phd inspect data/cityscapes/test/label/frankfurt_000000_000294.png --inst
    data/cityscapes/test/inst/frankfurt_000000_000294.png
    """
    from p2phd.inspection import inspect_path

    report = inspect_path(path, inst, classes, checkpoint)
    if as_json:
        emit_json(report)
        return
    {"label map": _label, "run": _run, "dataset": _data}[report["kind"]](report)


def _label(r: dict[str, Any]) -> None:
    out.print(f"{r['path']}: {r['size'][0]}x{r['size'][1]}")
    table = Table("class", "name", "share", title="classes present", title_justify="left")
    for c in r["classes"]:
        table.add_row(str(c["id"]), c["name"], f"{100 * c['share']:.2f}%")
    out.print(table)
    if "instances" in r:
        table = Table(
            "instance",
            "class",
            "area (px)",
            "box x0,y0,x1,y1",
            title="objects",
            title_justify="left",
        )
        for o in r["instances"]:
            table.add_row(
                str(o["id"]),
                f"{o['class']} {o['name']}",
                str(o["area"]),
                ",".join(map(str, o["box"])),
            )
        out.print(table)
        out.print(
            "use an instance id with --relabel-instance ID:CLASS, --vary instance:ID "
            'or a --style-map\'s "instances"'
        )


def _run(r: dict[str, Any]) -> None:
    g, d, s = r["generator"], r["discriminator"], r["schedule"]
    size = "x".join(map(str, r["train_size"])) if r["train_size"] else "mixed sizes"
    lines = [
        f"{r['path']}: {r['stage']} stage, step {r['step']}, epoch {r['epoch']} "
        f"({r['checkpoint']})",
        f"G: ngf {g['ngf']}, {g['n_downsample_global']} downsamplings, "
        f"{g['n_blocks_global']} blocks, {g['n_local_enhancers']} local enhancer(s), "
        f"{g['norm']} norm; D: {d['num_d']} scales of {d['n_layers_d']} layers, ndf {d['ndf']}",
        f"schedule: {s['epochs']} + {s['decay_epochs']} epochs (decay), lr {s['lr']:g}, "
        f"batch {s['batch_size']}; losses: {r['losses']['gan_mode']}, feature matching "
        f"{'on' if r['losses']['feature_matching'] else 'off'}, VGG "
        f"{'on' if r['losses']['vgg'] else 'off'}",
        f"data: {r['data']['root'] or '(imported)'}, label_nc {r['data']['label_nc']}, "
        f"{'instance maps' if r['data']['instance'] else 'no instance maps'}, trained at {size}",
    ]
    w = r["weights"]
    if w["ema"]:
        lines.append(
            f"weights: raw + moving average (beta {w['ema_beta']:g} after step "
            f"{w['ema_start']}), renders with: {w['used']}"
        )
    else:
        lines.append("weights: raw only (no moving average in this checkpoint)")
    if r["data"]["fields"]:
        lines += _field_lines(r["data"]["fields"])
    if r["features"]:
        f = r["features"]
        lines.append(f"features: {f['feat_num']} per {f['pool']}")
    for kind in ("encoded", "clusters"):
        if kind in r:
            found = r[kind]  # a damaged summary comes as the sentence that says so
            per = (
                found
                if isinstance(found, str)
                else ", ".join(f"{k}: {n}" for k, n in found.items())
            )
            lines.append(
                f"{'instances encoded' if kind == 'encoded' else 'clusters (k)'} per class: {per}"
            )
    for line in lines:
        out.print(line)
    table = Table("checkpoint", "step", "epoch", "saved", "size", title="checkpoints",
                  title_justify="left")  # fmt: skip
    for c in r["checkpoints"]:
        mark = " (latest)" if c["latest"] else " (kept)" if c["milestone"] else ""
        table.add_row(f"{c['name']}{mark}", str(c["step"]), str(c["epoch"]), c["saved"],
                      f"{c['bytes'] / 2**20:.1f} MiB")  # fmt: skip
    out.print(table)


def _field_lines(fields: dict[str, Any]) -> list[str]:
    return [f"measured fields: {side} {fields['described'][side]}" for side in ("input", "output")]


def _data(r: dict[str, Any]) -> None:
    out.print(
        f"{r['path']}: {r['dataset'] or 'dataset'} ({r['source_layout']} layout), "
        f"label_nc {r['label_nc']}, "
        f"{'instance maps' if r['instance'] else 'no instance maps'}"
    )
    if r["fields"]:
        for line in _field_lines(r["fields"]):
            out.print(line)
    for split, s in r["splits"].items():
        sizes = ", ".join("x".join(map(str, z)) for z in s["sizes"])
        out.print(f"{split}: {s['items']} items ({sizes}){'' if s['photos'] else ', no photos'}")
    if r["class_names"]:
        out.print("classes: " + ", ".join(f"{i} {n}" for i, n in enumerate(r["class_names"])))
