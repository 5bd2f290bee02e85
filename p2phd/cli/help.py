"""Help that reads at 80 columns: click's plain layout, whose option column never cuts a name
(rich's tables shorten `--activation-checkpointing` to `--activation-chec…`), every summary
whole in the command list, and examples printed as shell lines that paste as they read."""

from __future__ import annotations

import inspect
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

try:  # recent typer carries its own copy of click
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click  # type: ignore[no-redef,import-not-found,unused-ignore]

EXAMPLE = "Example: "
_HYPHEN = "\u2011"  # a non-breaking hyphen stands in for "-" while the text is wrapped


class Formatter(click.HelpFormatter):
    """Wraps help at spaces only: the hyphen in `--label-nc` is no place to break a line."""

    def write(self, string: str) -> None:
        super().write(string.replace(_HYPHEN, "-"))

    def write_text(self, text: str) -> None:
        super().write_text(text.replace("-", _HYPHEN))

    def write_dl(self, rows: Any, col_max: int = 30, col_spacing: int = 2) -> None:
        held = [(first, second.replace("-", _HYPHEN)) for first, second in rows]
        super().write_dl(held, col_max, col_spacing)


class Context(click.Context):
    formatter_class = Formatter


def shell_lines(command: str, width: int) -> list[str]:
    """`command` broken before its options so that each line fits `width`, every line but the
    last continued with ` \\`: an option and its values stay on one line."""
    groups: list[str] = []
    for word in command.split():
        if word.startswith("-") or not groups or not groups[-1].startswith("-"):
            groups.append(word)
        else:
            groups[-1] += " " + word
    lines = [groups[0]]
    for group in groups[1:]:
        if len(lines[-1]) + 1 + len(group) + 2 <= width:
            lines[-1] += " " + group
        else:
            lines[-1] += " \\"
            lines.append("    " + group)
    return lines


def summary(help_text: str | None) -> str:
    """The first sentence of a command's help, whole (click would shorten it to fit)."""
    first = inspect.cleandoc(help_text or "").split("\n\n", 1)[0]
    sentence = first.split(". ", 1)[0]
    return " ".join(sentence.split()).rstrip(".") + "." if sentence.strip() else ""


class _Summaries:
    help: str | None
    short_help: str | None

    def get_short_help_str(self, limit: int = 45) -> str:
        return inspect.cleandoc(self.short_help) if self.short_help else summary(self.help)


class HelpCommand(_Summaries, TyperCommand):
    """A command whose `Example: ...` paragraph is printed as shell lines."""

    context_class = Context

    def format_help_text(self, ctx: Any, formatter: Any) -> None:
        text = inspect.cleandoc(self.help or "").partition("\f")[0]
        if not text:
            return
        formatter.write_paragraph()
        with formatter.indentation():
            for i, paragraph in enumerate(text.split("\n\n")):
                if i:
                    formatter.write_paragraph()
                if not paragraph.startswith(EXAMPLE):
                    formatter.write_text(paragraph)
                    continue
                formatter.write_text(EXAMPLE.strip())
                indent = " " * (formatter.current_indent + 2)
                width = formatter.width - len(indent)
                for line in shell_lines(paragraph[len(EXAMPLE) :], width):
                    formatter.write(f"{indent}{line}\n")


class HelpGroup(_Summaries, TyperGroup):
    """A group listed in its parent by its whole first sentence."""

    context_class = Context


class P2phdTyper(typer.Typer):
    """A typer app whose commands and groups render their help as above."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=HelpGroup, rich_markup_mode=None, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", HelpCommand)
        return super().command(*args, **kwargs)
