"""The interactive editor's core (paper §4): label map pairs in memory, edited by
selecting, relabelling, restyling and painting, with undo. Each map keeps its edits and its
undo history for the session, so switching to another map and back loses nothing.

Every edit goes through what `synthesize` uses (reading and checks, `relabel`, the style
bank, `render`), and every region's style is pinned to an explicit cluster or vector. So
the edited maps and the style map the editor hands out, given to `p2phd synthesize`,
give back the image the editor showed, pixel for pixel, and painting a new object never
re-draws the styles of the others.
"""

from __future__ import annotations

import io
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from p2phd.data.io import id_map_array, read_rgb, resize_rgb, to_channels
from p2phd.data.names import class_id, class_name, name_key
from p2phd.edit.history import History, Maps
from p2phd.errors import ConfigError, NotFoundError, P2phdError
from p2phd.synth.edits import fresh_instance_id, relabel
from p2phd.synth.inputs import Input, SynthItem, collect_items, read_input, target_size
from p2phd.synth.styles import Style, StyleSpec, pinned
from p2phd.synth.synthesizer import Synthesizer
from p2phd.visual import colorize, legend_entries

MAX_STROKE_POINTS = 10_000
MAX_RADIUS = 256
SWATCH_BATCH = 4  # cluster swatches rendered per forward pass


class Editor:
    """One label map pair being edited with a run's Synthesizer: its history, and every
    region's pinned style (the style table)."""

    def __init__(
        self,
        synth: Synthesizer,
        labels: Sequence[Path] = (),
        inst: Sequence[Path] = (),
        *,
        width: int | None = None,
        spec: StyleSpec | None = None,
    ) -> None:
        """`spec`: how a map's regions are styled when it is opened (synthesize's default:
        random clusters, seed 0), so the editor opens a map as synthesize renders it."""
        self.synth, self.net, self.run = synth, synth.net, synth.run.root
        if self.net.label_nc == 0:
            takes = "measured fields" if self.net.fields is not None else "RGB input images"
            raise ConfigError(f"{self.run}: takes {takes}; the editor edits label maps")
        trained = synth.run.train_size
        self.width = width if width is not None else (trained[0] if trained else None)
        self.spec = spec or StyleSpec()
        if self.net.use_features:
            synth.bank  # noqa: B018  the style bank is needed from the first map on
        self.items = (
            {i.key: i for i in collect_items(labels, inst, self.net.instance)} if labels else {}
        )
        self._uploads = tempfile.TemporaryDirectory(prefix="p2phd-edit-")
        self._rng = np.random.default_rng(0)
        self.item: SynthItem | None = None
        self.history: History | None = None
        self._histories: dict[str, History] = {}  # every map opened this session, by key
        self.version = 0
        self._image: tuple[int, np.ndarray] | None = None
        if self.items:
            self.open(next(iter(sorted(self.items))))

    @property
    def maps(self) -> Maps | None:
        return self.history.current if self.history is not None else None

    # -- what the page shows -------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The run's classes (name, colour), the maps to pick from, and what it can do."""
        legend = legend_entries(self.net.label_nc, self.net.class_names)
        return {
            "run": str(self.run),
            "classes": [
                {"id": i, "name": class_name(i, self.net.class_names), "colour": list(colour)}
                for i, (_, colour) in enumerate(legend)
            ],
            "maps": sorted(self.items),
            "features": self.net.use_features,
            "instances": self.net.instance,
            **self.state(),
        }

    def state(self) -> dict[str, Any]:
        """What changes with each edit: the open map, its size, the undo depth, and which
        maps opened this session now differ from their files (uploads join the maps)."""
        edited = [key for key, h in sorted(self._histories.items()) if h.changed]
        if self.maps is None or self.item is None:
            return {"open": None, "version": self.version, "maps": sorted(self.items)}
        h, w = self.maps.label.shape
        return {
            "open": self.item.key,
            "maps": sorted(self.items),
            "edited": edited,
            "width": w,
            "height": h,
            "version": self.version,
            "can_undo": bool(self.history and self.history.undo_stack),
            "can_redo": bool(self.history and self.history.redo_stack),
        }

    def image(self) -> np.ndarray:
        """The synthesized image of the current maps (rendered once per edit)."""
        maps = self._current()
        if self._image is None or self._image[0] != self.version:
            self._image = (self.version, self._render([maps.styles])[0])
        return self._image[1]

    def coloured_label(self) -> np.ndarray:
        return colorize(self._current().label, self.net.label_nc)

    def select(self, x: int, y: int) -> dict[str, Any]:
        """The object under pixel (x, y): its id, class, area, bounding box and style."""
        maps = self._current()
        h, w = maps.label.shape
        if not (0 <= x < w and 0 <= y < h):
            raise ConfigError(f"({x}, {y}) is outside the {w}x{h} map")
        ident = int((maps.inst if maps.inst is not None else maps.label)[y, x])
        return self.describe(ident)

    def describe(self, ident: int) -> dict[str, Any]:
        maps = self._current()
        mask = self._mask(ident)
        ys, xs = np.nonzero(mask)
        cls = int(maps.label[ys[0], xs[0]])
        region = self._style_region(ident)
        style = maps.styles.get(region)
        return {
            "id": ident,
            "class": cls,
            "name": class_name(cls, self.net.class_names),
            "area": int(mask.sum()),
            "bbox": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
            "clusters": self._clusters(cls),
            "style": style if isinstance(style, int) or style is None else "vector",
        }

    def outline(self, ident: int) -> np.ndarray:
        """`[H, W, 4]` uint8: the object's border pixels opaque, the rest clear."""
        mask = self._mask(ident)
        inner = mask.copy()
        inner[1:, :] &= mask[:-1, :]
        inner[:-1, :] &= mask[1:, :]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        rgba = np.zeros((*mask.shape, 4), np.uint8)
        rgba[mask & ~inner] = (255, 255, 0, 255)
        return rgba

    def swatches(self, ident: int) -> list[np.ndarray]:
        """The object rendered in each cluster of its class, cropped to it (with a margin)."""
        maps = self._current()
        info = self.describe(ident)
        region = self._style_region(ident)
        choices = [{**maps.styles, region: c} for c in range(info["clusters"])]
        x0, y0, x1, y1 = info["bbox"]
        h, w = maps.label.shape
        pad = 8
        crop = (
            slice(max(0, y0 - pad), min(h, y1 + pad)),
            slice(max(0, x0 - pad), min(w, x1 + pad)),
        )
        images = []
        for i in range(0, len(choices), SWATCH_BATCH):
            images += [im[crop] for im in self._render(choices[i : i + SWATCH_BATCH])]
        return images

    # -- opening maps --------------------------------------------------------------------

    def open(self, key: str) -> dict[str, Any]:
        """Open map `key`: as its file holds it the first time, as it was left after that."""
        if key not in self.items:
            raise NotFoundError(f"no label map with the key {key!r}; pick one of the list")
        item = self.items[key]
        if key not in self._histories:
            self._histories[key] = History(self._read(item))
        self.item, self.history = item, self._histories[key]
        self.version += 1
        return self.state()

    def revert(self) -> dict[str, Any]:
        """Back to the open map as its file holds it, as one edit: undo brings the edits back."""
        history = self._history()
        assert self.item is not None
        history.commit(self._read(self.item))
        self.version += 1
        return self.state()

    def upload(
        self, label: bytes, label_name: str, inst: bytes | None = None, inst_name: str = ""
    ) -> dict[str, Any]:
        """A label (+ instance) PNG pair from the browser, checked as synthesize checks."""
        if self.net.instance and inst is None:
            raise ConfigError("this run uses instance maps: upload the instance PNG too")
        folder = Path(tempfile.mkdtemp(dir=self._uploads.name))
        files = {"label": (label, label_name), "inst": (inst, inst_name)}
        paths = {}
        for what, (data, _) in files.items():
            if data is not None and (what == "label" or self.net.instance):
                paths[what] = folder / f"{what}.png"
                paths[what].write_bytes(data)
        key = name_key(Path(label_name).name) if label_name else "upload"
        unique, n = key, 1
        while unique in self.items:  # an upload never takes the place of a map and its edits
            n += 1
            unique = f"{key}-{n}"
        item = SynthItem(unique, paths["label"], paths.get("inst"))
        try:
            maps = self._read(item)
        except P2phdError as exc:
            raise ConfigError(_uploaded(exc, paths, files)) from None
        self.items[unique], self._histories[unique] = item, History(maps)
        return self.open(unique)

    # -- edits ---------------------------------------------------------------------------

    def relabel(self, ident: int, target: str) -> dict[str, Any]:
        """Object `ident` becomes class `target` (a name or a number), as --relabel-instance
        does (or --relabel, for runs without instance maps)."""
        maps = self._current()
        self._mask(ident)
        cls = class_id(str(target), self.net.class_names, self.net.label_nc, "class")
        where = self._where()
        if maps.inst is None:
            label, inst, _ = relabel(maps.label, None, [(ident, cls)], [], 1, where)
        else:
            label, inst, _ = relabel(
                maps.label, maps.inst, [], [(ident, cls)], self.net.class_divisor, where
            )
        return self._commit(label, inst, maps.styles)

    def restyle(self, ident: int, cluster: int | None = None) -> dict[str, Any]:
        """Object `ident` takes cluster `cluster` of its class, or (None) a random other one."""
        maps = self._current()
        info = self._need_styles(ident)
        count, region = info["clusters"], self._style_region(ident)
        if count == 0:
            raise ConfigError(f"{info['name']} has no clusters; take its style from a photo")
        if cluster is None:
            current = maps.styles.get(region)
            others = [c for c in range(count) if c != current] or [0]
            cluster = int(self._rng.choice(others))
        if not 0 <= cluster < count:
            raise ConfigError(
                f"cluster {cluster}: {info['name']} has {count} clusters (0..{count - 1})"
            )
        return self._commit(maps.label, maps.inst, {**maps.styles, region: cluster})

    def style_from_photo(self, ident: int, photo: bytes, name: str = "photo.png") -> dict[str, Any]:
        """Object `ident` takes the look its region has in `photo` (read at the map's size),
        as E encodes it."""
        maps = self._current()
        self._need_styles(ident)
        path = Path(tempfile.mkdtemp(dir=self._uploads.name)) / "photo.png"
        path.write_bytes(photo)
        h, w = maps.label.shape
        try:
            rgb = to_channels(resize_rgb(read_rgb(path), w, h), self.net.output_nc)
        except P2phdError as exc:
            raise ConfigError(_uploaded(exc, {"photo": path}, {"photo": (photo, name)})) from None
        assert self.item is not None
        features = self.synth.encoded(Input(self.item, maps.label, maps.inst, rgb))
        region = self._style_region(ident)
        ys, xs = np.nonzero(self.net.pool_map(maps.label, maps.inst) == region)
        vector = tuple(float(v) for v in features[:, ys[0], xs[0]].float().cpu())
        return self._commit(maps.label, maps.inst, {**maps.styles, region: vector})

    def paint(self, points: Any, radius: Any, target: str | None) -> dict[str, Any]:
        """A brush stroke: class `target` paints a new object with a fresh instance id;
        None erases to class 0 (Cityscapes' "unlabeled")."""
        maps = self._current()
        mask = stroke_mask(maps.label.shape, points, radius)
        cls = (
            0
            if target is None
            else class_id(str(target), self.net.class_names, self.net.label_nc, "class")
        )
        label = maps.label.copy()
        label[mask] = cls
        inst = None
        if maps.inst is not None:
            inst = maps.inst.copy()
            if target is None:
                inst[mask] = 0
            else:
                inst[mask] = fresh_instance_id(maps.inst, cls, self.net.class_divisor)
        return self._commit(label, inst, maps.styles)

    def undo(self) -> dict[str, Any]:
        self._history().undo()
        self.version += 1
        return self.state()

    def redo(self) -> dict[str, Any]:
        self._history().redo()
        self.version += 1
        return self.state()

    # -- what the user takes away --------------------------------------------------------

    def label_png(self) -> bytes:
        return png_bytes(id_map_array(self._current().label))

    def inst_png(self) -> bytes:
        inst = self._current().inst
        if inst is None:
            raise NotFoundError("this run uses no instance maps")
        return png_bytes(id_map_array(inst))

    def style_map(self) -> dict[str, Any]:
        """`--style-map` JSON: every region's pinned style, by instance id (runs that pool
        per instance) or by class (runs that pool per class)."""
        styles = self._current().styles
        part = "instances" if self.net.style_pool == "instance" else "classes"
        return {
            part: {str(k): v if isinstance(v, int) else list(v) for k, v in sorted(styles.items())}
        }

    def downloads(self) -> dict[str, str]:
        """The file names the page saves the downloads under."""
        key = (self.item.key if self.item else "edited").replace("/", "_")
        names = {"image": f"{key}_edited.png", "label": f"{key}_edited_label.png"}
        if self.net.instance:
            names["inst"] = f"{key}_edited_inst.png"
        if self.net.use_features:
            names["style"] = f"{key}_edited_style.json"
        return names

    def command(self) -> str:
        """The `p2phd synthesize` line that renders the downloaded maps to the shown image."""
        names = self.downloads()
        h, w = self._current().label.shape
        parts = ["p2phd", "synthesize", str(self.run), names["label"]]
        if "inst" in names:
            parts += ["--inst", names["inst"]]
        if "style" in names:
            parts += ["--style-map", names["style"]]
        parts += ["--width", str(w), "--out", "edited"]
        if self.synth.options.device != "auto":
            parts += ["--device", self.synth.options.device]
        return shlex.join(parts)

    def close(self) -> None:
        self._uploads.cleanup()

    # -- inside --------------------------------------------------------------------------

    def _history(self) -> History:
        if self.history is None:
            raise NotFoundError("no label map is open; pick one or upload a label map")
        return self.history

    def _current(self) -> Maps:
        return self._history().current

    def _where(self) -> Path:
        return self.item.label if self.item else Path("label map")

    def _mask(self, ident: int) -> np.ndarray:
        maps = self._current()
        mask = (maps.inst if maps.inst is not None else maps.label) == ident
        if not mask.any():
            raise NotFoundError(f"no object with the id {ident} in this map")
        return mask

    def _style_region(self, ident: int) -> int:
        """The region id whose style object `ident` wears (itself, or its class)."""
        maps = self._current()
        if self.net.style_pool == "instance":
            return ident
        ys, xs = np.nonzero(self._mask(ident))
        return int(maps.label[ys[0], xs[0]])

    def _clusters(self, cls: int) -> int:
        return self.synth.clusters(cls)

    def _need_styles(self, ident: int) -> dict[str, Any]:
        if not self.net.use_features:
            raise ConfigError(
                f"{self.run}: was trained without instance features, so objects have no styles"
            )
        return self.describe(ident)

    def _read(self, item: SynthItem) -> Maps:
        """A map pair as synthesize renders it: every region pinned to the style the
        editor's spec (synthesize's default) gives it."""
        r = read_input(item, self.net, target_size(item, self.net, self.width))
        styles = self.synth.pinned(r, self.spec) if self.net.use_features else {}
        return Maps(r.label, r.inst, styles)

    def _commit(
        self, label: np.ndarray, inst: np.ndarray | None, styles: dict[int, Style]
    ) -> dict[str, Any]:
        """Make an edit the current state: styles of regions that are gone are dropped,
        new regions get a random cluster of their class (pinned, so later edits keep it)."""
        kept: dict[int, Style] = {}
        if self.net.use_features:
            ids, classes, _ = self.synth.region_ids(label, inst)
            for ident, cls in zip(ids.tolist(), classes.tolist(), strict=True):
                style, count = styles.get(ident), self._clusters(int(cls))
                if isinstance(style, tuple) or (isinstance(style, int) and style < count):
                    kept[ident] = style
                elif count:
                    kept[ident] = int(self._rng.integers(0, count))
        self._history().commit(Maps(label, inst, kept))
        self.version += 1
        return self.state()

    def _render(self, style_tables: list[dict[int, Style]]) -> list[np.ndarray]:
        """One forward pass: the current maps once per style table."""
        maps = self._current()
        assert self.item is not None
        r = Input(self.item, maps.label, maps.inst, None)
        features = None
        if self.net.use_features:
            pool = self.net.style_pool
            assert pool is not None
            features = [self.synth.styles(r, pinned(t, pool)) for t in style_tables]
        return self.synth.render([r] * len(style_tables), features)


def stroke_mask(shape: tuple[int, int], points: Any, radius: Any) -> np.ndarray:
    """`[H, W]` bool: the pixels within `radius` of the polyline through `points` ([x, y]
    pairs), one vectorised distance per segment over the segment's bounding box."""
    h, w = shape
    try:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        r = float(radius)
    except (TypeError, ValueError):
        raise ConfigError("a stroke is a list of [x, y] points and a radius") from None
    if not (
        1 <= len(pts) <= MAX_STROKE_POINTS and np.isfinite(pts).all() and 0.5 <= r <= MAX_RADIUS
    ):
        raise ConfigError(
            f"a stroke has 1 to {MAX_STROKE_POINTS} finite points and a radius from 0.5 to "
            f"{MAX_RADIUS}"
        )
    mask = np.zeros((h, w), bool)
    ends = np.stack([pts, np.roll(pts, -1, 0)], 1)[: max(len(pts) - 1, 1)]
    for a, b in ends:
        x0, x1 = (
            int(max(0, np.floor(min(a[0], b[0]) - r))),
            int(min(w, np.ceil(max(a[0], b[0]) + r) + 1)),
        )
        y0, y1 = (
            int(max(0, np.floor(min(a[1], b[1]) - r))),
            int(min(h, np.ceil(max(a[1], b[1]) + r) + 1)),
        )
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = b - a
        length = float(d @ d)
        t = np.zeros_like(xx, dtype=np.float64)
        if length > 0:
            t = np.clip(((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / length, 0, 1)
        dist2 = (xx - a[0] - t * d[0]) ** 2 + (yy - a[1] - t * d[1]) ** 2
        mask[y0:y1, x0:x1] |= dist2 <= r * r
    if not mask.any():
        raise ConfigError("the stroke does not touch the map")
    return mask


def png_bytes(array: np.ndarray) -> bytes:
    """`[H, W]`, `[H, W, 3]` or `[H, W, 4]` uint8 (or uint16 ids) as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _uploaded(
    exc: P2phdError, paths: dict[str, Path], files: dict[str, tuple[bytes | None, str]]
) -> str:
    """An error about an uploaded file, naming the upload rather than its temporary path."""
    text = str(exc)
    for what, path in paths.items():
        text = text.replace(str(path), f"uploaded {what} {files[what][1] or path.name}".rstrip())
    return text
