"""Names people use: the key that pairs a label map with its instance map and photo, and the
names of the classes.

One key rule everywhere (prep, synthesize's --inst and --style-from): the key of a file is
its stem without the suffixes datasets put on their file names (Cityscapes'
`_gtFine_labelIds`, `_gtFine_instanceIds`, `_leftImg8bit` and their kin), so
`aachen_000000_000019_gtFine_labelIds.png` and `aachen_000000_000019_leftImg8bit.png` pair
in any folder layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from p2phd.errors import ConfigError, DatasetError
from p2phd.jsonfile import SchemaError, parse, read_bounded

# Longest first, so "_gtFine_labelIds" goes before "_labelIds" is tried.
KEY_SUFFIXES = tuple(
    "_gtFine_labelTrainIds _gtCoarse_labelTrainIds _gtFine_instanceIds _gtCoarse_instanceIds "
    "_gtFine_labelIds _gtCoarse_labelIds _labelTrainIds _instanceIds _leftImg8bit _labelIds".split()
)
KEY_RULE = (
    "files pair by key: the file name without its extension and without a suffix such as "
    "_gtFine_labelIds, _gtFine_instanceIds or _leftImg8bit"
)


def name_key(name: str) -> str:
    """The pairing key of a file name or relative path (`a/b_leftImg8bit.png` -> `a/b`)."""
    stem = Path(name).with_suffix("").as_posix()
    for suffix in KEY_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


CLASS_NAMES_MAX_BYTES = 1 << 20  # a name a line: tens of thousands of classes


def read_class_names(path: Path) -> tuple[str, ...]:
    """Class names from a JSON list of strings, or from a text file with one name a line."""
    try:
        text = read_bounded(Path(path), CLASS_NAMES_MAX_BYTES).decode()
    except (OSError, ValueError) as exc:  # SchemaError (too large) and bad UTF-8 are ValueErrors
        raise DatasetError(f"--class-names {path}: unreadable ({exc})") from None
    if text.lstrip().startswith("["):
        try:
            names = parse(text)
        except SchemaError as exc:
            raise DatasetError(f"--class-names {path}: not a JSON list ({exc})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DatasetError(f"--class-names {path}: a JSON list must hold strings only")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    return check_class_names(names, f"--class-names {path}")


def check_class_names(names: Sequence[str], where: str) -> tuple[str, ...]:
    """Names are non-empty, distinct, and not plain numbers (a number means a class id)."""
    if not names:
        raise DatasetError(f"{where}: no class names")
    for name in names:
        if not name.strip() or name.strip().isdigit() or ":" in name:
            raise DatasetError(
                f"{where}: {name!r} cannot be a class name (empty, a number, or with ':'); "
                "rename it"
            )
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen and name != "unused":
            raise DatasetError(f"{where}: {name!r} names two classes; make the names distinct")
        seen.add(name.lower())
    return tuple(n.strip() for n in names)


def class_id(text: str, names: Sequence[str], label_nc: int, option: str) -> int:
    """A class given on the command line by number (`26`) or name (`car`, any case)."""
    text = text.strip()
    if text.isdigit():
        value = int(text)
    else:
        lowered = [n.lower() for n in names]
        if text.lower() not in lowered:
            known = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            hint = f"one of {known}" if names else "a class id (this run has no class names)"
            raise ConfigError(f"{option}: unknown class {text!r}; use {hint} or a number")
        value = lowered.index(text.lower())
    if value >= max(label_nc, 1):
        raise ConfigError(
            f"{option}: class {value} is unknown: this run has {label_nc} classes "
            f"(0..{label_nc - 1})"
        )
    return value


def class_name(index: int, names: Sequence[str]) -> str:
    """`car` for 26 with names, else `class 26`."""
    return names[index] if 0 <= index < len(names) else f"class {index}"


def class_with_id(index: int, names: Sequence[str]) -> str:
    """`car (class 26)` with names, else `class 26`: a name, and the id the options take."""
    return f"{names[index]} (class {index})" if 0 <= index < len(names) else f"class {index}"
