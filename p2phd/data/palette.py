"""Colour-coded label maps (`prep --palette`): many datasets ship their labels as RGB
colours (CamVid, the CMP facades, GTA5, Mapillary's previews). A palette says which colour
is which class id and what the class is called; prep turns every pixel's colour into its id
with one vectorised lookup, and a colour the palette lacks stops prep naming the file, the
colour, how many pixels have it and where the first one is.

A palette is a known dataset's own colours by name (`--palette cityscapes`), or a file:

* JSON: a list of `{"id": 7, "name": "road", "colour": [128, 64, 128]}` (`"color"` and
  `"#804080"` also work; without `"id"`, an entry's id is its place in the list);
* CSV with a header naming its columns: `name`, `r`, `g`, `b` (or one `colour` column of
  `#rrggbb`), and `id` where the row order is not the id, as CamVid's `class_dict.csv`.

Several colours may share an id (classes merged); one colour for two ids is refused. A
known dataset whose colours repeat (Cityscapes draws ids 0 to 4 black) gives a repeated
colour its first id.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from p2phd import datasets
from p2phd.data.io import MAX_ID, open_image
from p2phd.data.names import check_class_names
from p2phd.errors import DatasetError
from p2phd.jsonfile import parse

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Palette:
    """Colour -> class id, and the class names (one per id, `class N` where none given)."""

    source: str  # the file or the dataset it came from, for messages
    colours: tuple[RGB, ...]
    ids: tuple[int, ...]  # the class id of each colour
    names: tuple[str, ...]  # class id -> name; () where the palette names none
    label_nc: int  # its classes: one past the largest id, or a known dataset's count

    def ids_of(self, path: Path, rgb: np.ndarray) -> np.ndarray:
        """`[H, W, 3]` uint8 colours -> `[H, W]` int64 class ids; an unknown colour raises a
        one-line `DatasetError` with its pixel count and first position."""
        keys = _keys(rgb)
        table = _keys(np.array(self.colours, np.uint8))
        order = np.argsort(table)
        table, ids = table[order], np.array(self.ids, np.int64)[order]
        pos = np.searchsorted(table, keys).clip(max=len(table) - 1)
        known = table[pos] == keys
        if not known.all():
            first = int(np.flatnonzero(~known)[0])
            key = int(keys.flat[first])
            count = int((keys == key).sum())
            others = len(np.unique(keys[~known])) - 1
            y, x = divmod(first, keys.shape[1])
            colour = (key >> 16, (key >> 8) & 255, key & 255)
            more = f" (and {others} other unknown colours)" if others else ""
            raise DatasetError(
                f"{path}: colour {colour} is not in the palette {self.source}: {count} "
                f"pixels, the first at x={x}, y={y}{more}; add it to the palette or fix the map"
            )
        return ids[pos]


def read_colours(path: Path) -> np.ndarray:
    """A colour-coded label map as uint8 `[H, W, 3]`, its colours exact (no EXIF turn, no
    scaling: 16-bit files are refused)."""
    image = open_image(path)
    if image.mode in ("I;16", "I;16L", "I;16B", "I", "F"):
        raise DatasetError(
            f"{path}: a {image.mode} image holds ids, not colours; drop --palette for it"
        )
    return np.array(image.convert("RGB"))


def load_palette(spec: str) -> Palette:
    """`--palette`: a known dataset's name (`cityscapes`), or a JSON or CSV file."""
    known = datasets.get(spec)
    if known is not None and known.colours is not None:
        first: dict[RGB, int] = {}
        for index, colour in enumerate(known.colours):
            first.setdefault(tuple(colour), index)  # type: ignore[arg-type]
        return Palette(spec, tuple(first), tuple(first.values()), known.classes, len(known.classes))
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, ValueError) as exc:
        names = [d.name for d in datasets.known() if d.colours is not None]
        raise DatasetError(
            f"--palette {spec}: not a readable file ({exc.__class__.__name__}); give a JSON "
            f"or CSV palette, or one of {', '.join(names)}"
        ) from None
    where = f"--palette {spec}"
    rows = _json_rows(text, where) if text.lstrip().startswith("[") else _csv_rows(text, where)
    return _palette(rows, where, spec)


def _json_rows(text: str, where: str) -> list[dict[str, Any]]:
    try:
        entries = parse(text)
    except ValueError as exc:
        raise DatasetError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DatasetError(f"{where}: a JSON palette is a list of objects with a colour each")
    rows = []
    for index, entry in enumerate(entries):
        colour = entry.get("colour", entry.get("color"))
        rows.append({"id": entry.get("id", index), "name": entry.get("name"), "colour": colour})
    return rows


def _csv_rows(text: str, where: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
    has_rgb = all(c in fields for c in "rgb")
    colour_field = fields.get("colour", fields.get("color"))
    if not has_rgb and colour_field is None:
        raise DatasetError(
            f"{where}: a CSV palette needs a header with r, g, b (or colour) columns, and "
            "name and id where it has them"
        )
    rows = []
    for index, row in enumerate(reader):
        cells = {k: (row.get(f) or "").strip() for k, f in fields.items()}
        colour = [cells[c] for c in "rgb"] if has_rgb else cells.get("colour", cells.get("color"))
        rows.append({"id": cells.get("id") or index, "name": cells.get("name"), "colour": colour})
    return rows


def _palette(rows: list[dict[str, Any]], where: str, source: str) -> Palette:
    """Check the rows (colours, ids, names) and make the palette."""
    if not rows:
        raise DatasetError(f"{where}: holds no colours")
    by_colour: dict[RGB, int] = {}
    names: dict[int, str] = {}
    for number, row in enumerate(rows, 1):
        colour, ident = _colour(row["colour"]), _id(row["id"])
        if colour is None or ident is None:
            raise DatasetError(
                f"{where}: entry {number} needs a colour of three values 0-255 (or #rrggbb) "
                f"and an id 0-{MAX_ID}; got colour {row['colour']!r}, id {row['id']!r}"
            )
        if by_colour.setdefault(colour, ident) != ident:
            raise DatasetError(
                f"{where}: colour {colour} is given to class {by_colour[colour]} and to class "
                f"{ident}; give each colour one id"
            )
        name = str(row["name"]).strip() if row["name"] not in (None, "") else None
        if name is not None and names.setdefault(ident, name) != name:
            raise DatasetError(
                f"{where}: class {ident} is called {names[ident]!r} and {name!r}; give it one name"
            )
    label_nc = max(by_colour.values()) + 1
    named: tuple[str, ...] = ()
    if names:
        named = check_class_names([names.get(i, f"class {i}") for i in range(label_nc)], where)
    return Palette(source, tuple(by_colour), tuple(by_colour.values()), named, label_nc)


def _colour(value: Any) -> RGB | None:
    if isinstance(value, str) and value.startswith("#") and len(value) == 7:
        try:
            return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)
        except ValueError:
            return None
    if isinstance(value, list | tuple) and len(value) == 3:
        channels = [_int(v) for v in value]
        if all(c is not None and 0 <= c <= 255 for c in channels):
            return channels[0], channels[1], channels[2]  # type: ignore[return-value]
    return None


def _id(value: Any) -> int | None:
    ident = _int(value)
    return ident if ident is not None and 0 <= ident <= MAX_ID else None


def _int(value: Any) -> int | None:
    """An integer from JSON (not a bool or a float) or from a CSV cell."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _keys(rgb: np.ndarray) -> np.ndarray:
    """Colours as one int64 each (`r << 16 | g << 8 | b`), for one sorted lookup."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
