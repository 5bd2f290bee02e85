"""What evaluation compares: synthesized images paired with real photos and label maps by
key (the one key rule of `data.names`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p2phd.data.io import IMAGE_SUFFIXES
from p2phd.data.names import KEY_RULE, name_key
from p2phd.errors import DatasetError


@dataclass(frozen=True)
class Pair:
    key: str
    fake: Path
    real: Path | None
    label: Path | None


def _images(folder: Path, what: str) -> dict[str, Path]:
    if not Path(folder).is_dir():
        raise DatasetError(f"{folder}: no such folder of {what}")
    found: dict[str, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            if name_key(path.name) in found:
                raise DatasetError(
                    f"{path}: a second {what} with the key {name_key(path.name)!r}; {KEY_RULE}"
                )
            found[name_key(path.name)] = path
    if not found:
        raise DatasetError(f"{folder}: holds no {what} ({', '.join(IMAGE_SUFFIXES)})")
    return found


def pair_folders(fake: Path, real: Path | None, labels: Path | None) -> list[Pair]:
    """Fakes paired with real photos and label maps by key; every fake needs its partners."""
    fakes = _images(fake, "synthesized images")
    reals = _images(real, "real photos") if real is not None else {}
    label_maps = _images(labels, "label maps") if labels is not None else {}
    for partners, folder in ((reals, real), (label_maps, labels)):
        missing = sorted(set(fakes) - set(partners)) if folder is not None else []
        if missing:
            raise DatasetError(
                f"{fakes[missing[0]]}: no partner with the key {missing[0]!r} in "
                f"{folder} ({len(missing)} of {len(fakes)} unmatched); "
                f"{KEY_RULE}"
            )
    return [Pair(k, fakes[k], reals.get(k), label_maps.get(k)) for k in sorted(fakes)]
