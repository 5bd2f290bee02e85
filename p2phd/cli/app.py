"""The typer app and what every command shares: one-line errors, progress, JSON output.

Known problems (`P2phdError`) print one line and exit with status 2; Ctrl-C and SIGTERM stop
a command as an exception does (its temporary files are removed on the way out) and exit
with status 130 or 143 in one line; anything else is a bug and exits with status 1 and a
traceback.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from p2phd.cli.help import P2phdTyper
from p2phd.errors import P2phdError

app = P2phdTyper(
    name="p2phd",
    help="pix2pixHD as a command-line toolkit: label maps (+ instance maps) -> photos.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# One line per message; no emoji codes (":x" in "instance:x" is not a picture).
err = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)
Opt = typer.Option

P = ParamSpec("P")
R = TypeVar("R")


_SMALLER = "pass a smaller --width, --load-width, --crop-size or --batch-size"


def stopped(signum: int, outcome: str) -> typer.Exit:
    """Say in one line that a signal stopped the command, and what is left; the exit (130 or
    143) to raise."""
    how = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"
    err.print(f"[bold red]stopped:[/] {how}; {outcome}")
    return typer.Exit(128 + signum)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a `P2phdError` into one line on stderr and exit status 2, and a stop by Ctrl-C or
    SIGTERM into one line and 130 or 143 (commands with a stop of their own, training and
    the editor's server, handle the signals themselves while they run)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with terminated_cleanly():
                return command(*args, **kwargs)
        except P2phdError as exc:
            line = " ".join(str(exc).split("\n"))  # one line, even if a message forgot
            err.print(f"[bold red]error:[/] {escape(line)}")
            raise typer.Exit(2) from None
        except MemoryError:
            err.print(f"[bold red]error:[/] out of memory; {_SMALLER}")
            raise typer.Exit(2) from None
        except RuntimeError as exc:  # torch's OutOfMemoryError, without importing torch here
            if type(exc).__name__ != "OutOfMemoryError":
                raise
            err.print(f"[bold red]error:[/] out of GPU memory; {_SMALLER}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            raise stopped(signal.SIGINT, "nothing half-written is kept") from None
        except Terminated:
            raise stopped(signal.SIGTERM, "nothing half-written is kept") from None

    return wrapper


def given(**options: Any) -> dict[str, Any]:
    """The options the user actually gave (typer defaults are None): defaults stay in config."""
    return {k: v for k, v in options.items() if v is not None}


class RateColumn(ProgressColumn):
    """Steps per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} it/s" if speed else "-.-- it/s", style="progress.data.speed")


@contextmanager
def progress_bar(
    quiet: bool,
    *fields: str,
    columns: list[ProgressColumn] | None = None,
    console: Console | None = None,
) -> Iterator[Progress]:
    """A rich progress bar with rate and ETA (hidden with --quiet or when stderr is no TTY).
    Tasks start hidden until their total is known (no empty "0/?" bar); when the work
    fails, the bar goes away: the error is the one line left."""
    columns = columns or [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *(TextColumn(f"{{task.fields[{f}]}}") for f in fields),
    ]
    out = console or err
    hidden = quiet or not out.is_terminal
    with Progress(*columns, console=out, disable=hidden, transient=False, expand=True) as bar:
        try:
            yield bar
        except BaseException:
            bar.live.transient = True
            raise


def counting(bar: Progress, description: str) -> Callable[[int, int], None]:
    """A progress callback `(done, total)` for the core: the task appears with its total."""
    task = bar.add_task(description, total=None, visible=False)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total, visible=True)

    return update


class Terminated(BaseException):
    """SIGTERM, raised where the command is, as Ctrl-C raises `KeyboardInterrupt`."""


@contextmanager
def terminated_cleanly() -> Iterator[None]:
    """SIGTERM ends the command as Ctrl-C does, by an exception, so its temporary folders
    are removed on the way out instead of left behind."""

    def stop(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def emit_json(data: dict[str, Any]) -> None:
    """The machine-readable summary asked for with --json, on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _version(value: bool) -> None:
    if value:
        import p2phd

        typer.echo(f"p2phd {p2phd.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """pix2pixHD as a command-line toolkit: label maps (+ instance maps) -> photos."""


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
# The device options of every command that reads a run (p2phd.runtime.DeviceOptions).
Device = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")]
Precision = Annotated[str, typer.Option(help="auto (bf16 on CUDA) | fp32 | bf16.")]
Compile = Annotated[bool, typer.Option("--compile", help="torch.compile the nets as one graph.")]
# Which checkpoint of RUN every command that reads a run takes (p2phd.synth.run.Run.open).
Weights = Annotated[
    str,
    typer.Option(
        "--weights",
        help="auto (the moving average where the run has one) | ema | raw.",
    ),
]
Checkpoint = Annotated[
    str,
    typer.Option(
        "--checkpoint",
        help="latest | best | STEP | epoch:N (the last saved in epoch N); p2phd inspect RUN "
        "lists them.",
    ),
]


def main() -> None:
    """Console-script entry point."""
    app()
