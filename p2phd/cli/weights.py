"""`p2phd weights fetch|list`: the pretrained VGG19 and Inception weights, in one cache."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from p2phd.cli.app import (
    AsJson,
    Opt,
    Quiet,
    app,
    counting,
    emit_json,
    err,
    progress_bar,
    user_errors,
)
from p2phd.cli.help import P2phdTyper

weights = P2phdTyper(
    help="Fetch the pretrained weights p2phd uses (VGG19 for the VGG loss, Inception for FID).",
    no_args_is_help=True,
)
app.add_typer(weights, name="weights")


@weights.command("fetch")
@user_errors
def fetch(
    name: Annotated[str, typer.Argument(help="vgg19 | inception.")],
    *,
    url: Annotated[str | None, Opt(help="Download from here instead (a mirror).")] = None,
    sha256: Annotated[
        str | None, Opt("--sha256", help="The digest to check instead of the pinned one.")
    ] = None,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Download weights from the official URL into the cache, checked against a pinned
    SHA-256; an interrupted download resumes. --vgg-weights and --inception then default
    to the cached file.

    Example: p2phd weights fetch vgg19
    """
    from p2phd.downloads import fetch as do_fetch
    from p2phd.downloads import known

    entry = known(name)
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ]
    with progress_bar(quiet, columns=columns) as bar:
        got = do_fetch(
            name, url=url, sha256=sha256, on_progress=counting(bar, f"fetch {entry.file}")
        )
    if as_json:
        emit_json(
            {
                "path": str(got.path),
                "sha256": got.sha256,
                "downloaded": got.downloaded,
                "resumed_from": got.resumed_from,
            }
        )
    elif not quiet:
        how = "already there" if not got.downloaded else f"{got.downloaded:,} bytes fetched"
        resumed = f", resumed after {got.resumed_from:,}" if got.resumed_from else ""
        err.print(f"{got.path} ({how}{resumed}; sha256 {got.sha256[:16]}...)")
        err.print(f"{entry.option} now defaults to it")


@weights.command("list")
@user_errors
def list_weights(as_json: AsJson = False) -> None:
    """Show the weights p2phd can fetch, their URLs, and which are in the cache."""
    from p2phd.downloads import KNOWN, cache_dir, cached

    rows = [
        {
            "name": w.name,
            "for": w.purpose,
            "option": w.option,
            "url": w.url,
            "cached": str(path) if (path := cached(w.name)) else None,
        }
        for w in KNOWN.values()
    ]
    if as_json:
        emit_json({"cache": str(cache_dir()), "weights": rows})
        return
    typer.echo(f"cache: {cache_dir()}")
    for row in rows:
        where = row["cached"] or f"not fetched: p2phd weights fetch {row['name']}"
        typer.echo(f"{row['name']} ({row['for']}, {row['option']}): {where}")
        typer.echo(f"  {row['url']}")
