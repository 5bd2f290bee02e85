"""The pairing of a source's files: one item per key, never by sorted position.

Every layout (`sources.py`) says where each role's files live (`Role`); pairing lists them
by key and pairs them. The reference pairs its file lists by sorted position, so one missing
file silently shifts every later pair; here a key lacking a partner is a bad item whose
message names the file, the missing partner and the key rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from p2phd.data.io import IMAGE_SUFFIXES, not_there
from p2phd.data.names import KEY_RULE, name_key
from p2phd.errors import DatasetError

SPLITS = ("train", "test")
NOUN = {"label": "label map", "input": "input photo", "inst": "instance map", "img": "photo"}
ARRAY_SUFFIXES = (".npy", ".fits", ".fit", ".fts")  # measured fields (data/fields.py)
SOURCE_SUFFIXES = (*IMAGE_SUFFIXES, *ARRAY_SUFFIXES)


@dataclass(frozen=True)
class Item:
    """One source sample: its split, its key and one file per role (label, inst, img, input)."""

    split: str
    key: str
    files: dict[str, Path]
    reader: str = ""  # the known dataset whose read_item reads it ("": plain files)
    extra: object = None  # what that reader needs besides the files (COCO: its objects)

    @property
    def name(self) -> str:
        """The output file stem: nested keys are flattened with `__`."""
        return self.key.replace("/", "__")


@dataclass(frozen=True)
class Bad:
    """An item that cannot be prepped, with the one-line reason naming the file and the fix."""

    split: str
    key: str
    reason: str


MakeItem = Callable[[str, str, dict[str, Path]], Item | Bad]  # (split, key, role -> file)


@dataclass(frozen=True)
class Split:
    """The paired items of one split, the keys that failed to pair, and whether photos exist."""

    items: list[Item]
    bad: list[Bad]
    has_images: bool


SourceKind = Literal["labels", "rgb", "field"]  # label maps, RGB photos, measured fields


@dataclass(frozen=True)
class Source:
    """A discovered source dataset."""

    root: Path
    layout: str  # "reference", or the known dataset whose download it is
    kind: SourceKind
    instance: bool
    splits: dict[str, Split] = field(default_factory=dict)
    dataset: str = ""  # by layout or file names (Cityscapes), "toy" (toy.json), or unknown
    classes: tuple[str, ...] = ()  # the dataset's class names, when it is a known one
    class_divisor: int = 1000  # its instance ids are class * this + k (COCO: 256)

    @property
    def label_nc(self) -> int | None:
        """The known dataset's number of classes (Cityscapes: 35), else None (inferred)."""
        return len(self.classes) if self.classes else None


@dataclass(frozen=True)
class Role:
    """Where the files of one role of one split live and how their names map to keys."""

    role: str
    folder: Path
    suffix: str | None  # Cityscapes file-name suffix; None: any image suffix (reference)

    def expected(self, key: str) -> str:
        if self.suffix is None:
            return f"{self.folder / key}.*"
        city = key.rsplit("_", 2)[0]
        return str(self.folder / city / f"{key}{self.suffix}")

    def _wanted(self, path: Path) -> bool:
        """Whether a file of this name would be one of this role's."""
        if self.suffix is None:
            return path.suffix.lower() in SOURCE_SUFFIXES
        return path.name.endswith(self.suffix)

    def scan(self, split: str) -> tuple[dict[str, Path], list[Bad]]:
        """Key -> file; two files with one key (a.png and a.jpg) are a bad item."""
        found: dict[str, list[Path]] = {}
        dangling: list[Bad] = []
        for path in sorted(self.folder.rglob("*")):
            rel = path.relative_to(self.folder)
            if any(part.startswith(".") for part in rel.parts):
                continue  # hidden files: macOS "._x.png" forks, editors' and our temp files
            if not path.is_file():
                if path.is_symlink() and self._wanted(path):  # a link to nothing: say so
                    dangling.append(
                        Bad(split, name_key(rel.as_posix()), f"{path}: {not_there(path)}; "
                            "fix or remove the link")
                    )  # fmt: skip
                continue
            if self.suffix is None:
                if path.suffix.lower() not in SOURCE_SUFFIXES:
                    continue
                key = name_key(rel.as_posix())
            elif path.name.endswith(self.suffix):
                key = name_key(path.name)
            else:
                continue
            found.setdefault(key, []).append(path)
        files = {key: paths[0] for key, paths in found.items() if len(paths) == 1}
        bad = dangling + [
            Bad(split, key, f"{paths[0]} and {paths[1]} share the key {key!r}; keep only one")
            for key, paths in found.items()
            if len(paths) > 1
        ]
        return files, bad


def pair_all(
    src: Path,
    layout: str,
    kind: SourceKind,
    roles: dict[str, list[Role]],
    make_item: MakeItem = Item,
) -> Source:
    """The source `src` in `layout`: every split's files paired by key (a split folder with
    no file at all is an error, not an empty split)."""
    splits = {split: _pair(split, split_roles, make_item) for split, split_roles in roles.items()}
    for split, found in splits.items():
        if not found.items and not found.bad:
            role = roles[split][0]
            wanted = f"*{role.suffix}" if role.suffix else ", ".join(SOURCE_SUFFIXES)
            raise DatasetError(
                f"{role.folder}/: no images found (looked for {wanted}); add the source files "
                "or remove the folder"
            )
    instance = any(r.role == "inst" for rs in roles.values() for r in rs)
    return Source(src, layout, kind, instance, splits)


def _pair(split: str, roles: list[Role], make_item: MakeItem = Item) -> Split:
    """Pair the files of one split by key; unmatched keys become bad items. `make_item` makes
    each paired item (or refuses it)."""
    scans = [role.scan(split) for role in roles]
    files = {role.role: found for role, (found, _) in zip(roles, scans, strict=True)}
    bad = {b.key: b for _, dups in scans for b in dups}
    keys = sorted(set().union(*files.values()) | set(bad))
    unmatched = {k for k in keys if k not in bad and any(k not in f for f in files.values())}
    items: list[Item] = []
    names: dict[str, str] = {}
    for key in keys:
        if key in bad:
            continue
        if key in unmatched:
            bad[key] = Bad(split, key, _unmatched(key, roles, files, unmatched, len(keys)))
            continue
        item = make_item(split, key, {role.role: files[role.role][key] for role in roles})
        if isinstance(item, Bad):
            bad[key] = item
            continue
        if item.name in names:  # "a/b" and "a__b" would write the same file
            clash = f"{item.files[roles[0].role]}: is written as {item.name}.png, as is key "
            bad[key] = Bad(split, key, clash + f"{names[item.name]!r}; rename one of them")
            continue
        names[item.name] = key
        items.append(item)
    return Split(items, [bad[k] for k in sorted(bad)], any(r.role == "img" for r in roles))


def _unmatched(
    key: str,
    roles: list[Role],
    files: dict[str, dict[str, Path]],
    unmatched: set[str],
    n_keys: int,
) -> str:
    """'<file> has no partner in <folder>/ (expected <file>.*); e.g. <file of the other side>
    has no partner either; <the key rule>; add it or remove ...'."""
    have = next(r for r in roles if key in files[r.role])
    missing = [r for r in roles if key not in files[r.role]]
    where = " nor in ".join(f"{r.folder}/ (expected {r.expected(key)})" for r in missing)
    others = sorted(k for k in unmatched if k != key and k in files[missing[0].role])
    other = ""
    if others:
        other = f"; {files[missing[0].role][others[0]]} (key {others[0]!r}) has no partner either"
    return (
        f"{files[have.role][key]} (key {key!r}) has no partner in {where}{other}; {KEY_RULE}; "
        f"add the partner or remove the {NOUN[have.role]} ({len(unmatched)} of {n_keys} "
        "keys unmatched)"
    )


def folder_roles(folders: dict[str, tuple[Path, Path]], missing: str) -> dict[str, list[Role]]:
    """Split -> roles for layouts with one folder of label maps and one of photos per split
    (ADE20K, COCO-Stuff): the labels, then the photos (required for train)."""
    roles: dict[str, list[Role]] = {}
    for split, (labels, photos) in folders.items():
        if not labels.is_dir():
            continue
        roles[split] = [Role("label", labels, None)]
        if photos.is_dir():
            roles[split].append(Role("img", photos, None))
        elif split == "train":
            raise DatasetError(f"{photos}/ is missing; training needs the photos")
    if not roles:
        raise DatasetError(missing)
    return roles
