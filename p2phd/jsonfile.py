"""The one reader of JSON files, and the one strict decoder of JSON into typed dataclasses.

A JSON file from disk is read with a size bound and a nesting bound (checked before the
parser recurses, so a deeply nested file is an error, not a `RecursionError`), then decoded
against a frozen dataclass: unknown keys, missing fields and wrong types are errors that name
the field (`splits.train.items[3].width: expected int, got 'abc'`), and the dataclass's own
`__post_init__` checks its values. Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from p2phd.errors import ConfigError, P2phdError

MAX_BYTES = 256 * 1024 * 1024  # a p2phd JSON file of a huge dataset stays far below this
MAX_DEPTH = 64  # p2phd's own files nest 6 deep at most
T = TypeVar("T")


class SchemaError(ValueError):
    """JSON whose shape or values are not what the schema says; the message names the field."""


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string, escapes and all
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def check_depth(text: str | bytes, max_depth: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than `max_depth`. The strings go first (a bracket in a name
    is no nesting), then everything but the brackets, in C: a COCO file of half a gigabyte
    leaves a few million brackets to count."""
    data = text.encode() if isinstance(text, str) else text
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    depth = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > max_depth:
                raise SchemaError(f"nested deeper than {max_depth} levels")
        else:
            depth -= 1


def parse(text: str | bytes, max_depth: int = MAX_DEPTH, *, allow_nan: bool = False) -> Any:
    """JSON text as Python data, bounded in depth; NaN and Infinity are refused unless
    `allow_nan` (for a reader that names them as not finite where they stand)."""
    check_depth(text, max_depth)

    def constant(name: str) -> Any:
        if allow_nan:
            return float(name)
        raise SchemaError(f"{name} is not a JSON number")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) != len(pairs):  # json keeps the last silently; a hand edit gone wrong
            keys = [k for k, _ in pairs]
            twice = next(k for i, k in enumerate(keys) if k in keys[:i])
            raise SchemaError(f"key {twice!r} appears twice in one object")
        return found

    try:
        return json.loads(text, parse_constant=constant, object_pairs_hook=unique)
    except RecursionError:  # a bound below the interpreter's own
        raise SchemaError(f"nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as exc:
        raise SchemaError(f"not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """A file's bytes, refused (`SchemaError`) past `max_bytes`: /dev/zero ends here."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SchemaError(f"larger than {max_bytes / (1024 * 1024):g} MiB")
    return data


def read_json(path: Path, max_bytes: int = MAX_BYTES, *, allow_nan: bool = False) -> Any:
    """A JSON file's data; raises `OSError` for an unreadable file and `SchemaError` for a
    file too large, too deep or not JSON."""
    return parse(read_bounded(path, max_bytes), allow_nan=allow_nan)


def read_typed(
    path: Path,
    cls: type[T],
    error: type[P2phdError],
    fix: str,
    *,
    max_bytes: int = MAX_BYTES,
) -> T:
    """`path` decoded as `cls`; any problem is one `error` line naming the file, the field
    and `fix`."""
    try:
        return decode(cls, read_json(path, max_bytes), "")
    except FileNotFoundError:
        raise error(f"{path}: not found; {fix}") from None
    except OSError as exc:
        raise error(f"{path}: unreadable ({exc.strerror or exc}); {fix}") from None
    except (SchemaError, ConfigError) as exc:
        raise error(f"{path}: {exc}; {fix}") from None


def decode(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass `cls` from JSON data, strictly: unknown keys, missing fields and wrong
    types are `SchemaError`s naming the field; `cls.__post_init__` checks the values."""
    return _decode(cls, data, where)


def _decode(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _decode_dataclass(hint, value, where)
    if hint is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = " | ".join(map(repr, typing.get_args(hint)))
            raise SchemaError(f"{_name(where)}: {_short(value)} is not one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _decode(inner[0], value, where)
        for option in inner:  # the first that fits
            try:
                return _decode(option, value, where)
            except SchemaError:
                continue
        raise SchemaError(f"{_name(where)}: {_short(value)} is none of {hint}")
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):  # JSON gives lists; `asdict` gives tuples
            raise SchemaError(f"{_name(where)}: expected a list, got {_short(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise SchemaError(f"{_name(where)}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise SchemaError(f"{_name(where)}: expected a list, got {_short(value)}")
        return [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_type, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise SchemaError(f"{_name(where)}: expected an object, got {_short(value)}")
        if key_type is not str:
            raise TypeError(f"{hint}: JSON keys are strings")
        return {k: _decode(item, v, f"{where}.{k}" if where else k) for k, v in value.items()}
    return _plain(hint, value, where)


def _decode_dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise SchemaError(f"{_name(where)}: expected an object, got {_short(value)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    version = fields.get("schema_version")
    if version is not None and value.get("schema_version", version.default) != version.default:
        # a file of another version is named as such, not by the fields that then differ
        raise SchemaError(
            f"{_join(where, 'schema_version')} {_short(value['schema_version'])}, "
            f"this p2phd reads {version.default}"
        )
    unknown = sorted(set(value) - set(fields))
    if unknown:
        listed = ", ".join(f"{where}.{k}" if where else k for k in unknown[:3])
        raise SchemaError(f"unknown key(s) {listed}")
    missing = [
        name
        for name, f in fields.items()
        if name not in value
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SchemaError(f"{_join(where, missing[0])}: missing")
    kwargs = {k: _decode(hints[k], v, _join(where, k)) for k, v in value.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise SchemaError(f"{_name(where)}: {exc}" if where else str(exc)) from None


def _plain(hint: Any, value: Any, where: str) -> Any:
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"{where}: unsupported field type {hint}")
    if not ok:
        raise SchemaError(f"{_name(where)}: expected {hint.__name__}, got {_short(value)}")
    return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _name(where: str) -> str:
    return where or "the file"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
