"""`p2phd edit`: the interactive editor in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from p2phd.cli.app import (
    Checkpoint,
    Compile,
    Device,
    Opt,
    Precision,
    Weights,
    app,
    err,
    stopped,
    user_errors,
)


@app.command()
@user_errors
def edit(
    run: Annotated[Path, typer.Argument(help="Run folder of a trained generator.")],
    labels: Annotated[
        list[Path] | None, typer.Argument(help="Label maps, or folders of them, to pick from.")
    ] = None,
    *,
    inst: Annotated[
        list[Path] | None, Opt("--inst", help="Instance maps or folders (paired by file name).")
    ] = None,
    port: Annotated[int, Opt(help="Port to listen on (0: a free one).")] = 0,
    host: Annotated[
        str, Opt(help="Address to listen on; anything but loopback lets others in.")
    ] = "127.0.0.1",
    width: Annotated[int | None, Opt(help="Resize label maps to this width.")] = None,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    checkpoint: Checkpoint = "latest",
    weights: Weights = "auto",
) -> None:
    """Edit label maps in the browser and watch the photo follow: select, relabel, restyle,
    paint; download the maps, the style map and the synthesize command that reproduces them.

    Example: p2phd edit toy_demo/run toy_demo/data/test/label --inst toy_demo/data/test/inst
    """
    from p2phd.edit.editor import Editor
    from p2phd.edit.server import EditServer, is_loopback
    from p2phd.runtime import DeviceOptions
    from p2phd.synth.run import Run
    from p2phd.synth.synthesizer import Synthesizer

    synth = Synthesizer(
        Run.open(run, checkpoint, weights), DeviceOptions(device, precision, compile)
    )
    editor = Editor(synth, labels or (), inst or (), width=width)
    try:
        server = EditServer(editor, host, port)
    except BaseException:
        editor.close()
        raise
    if not is_loopback(host):
        err.print(
            f"[bold yellow]warning:[/] listening on {host}: anyone who can reach this machine "
            "can use the editor and see the maps"
        )
    typer.echo(f"p2phd edit: open {server.url}  (Ctrl-C stops)")
    try:
        signum = server.serve_until_signalled()
    finally:
        server.server_close()
        editor.close()
    if signum:
        raise stopped(signum, "the server is closed")
