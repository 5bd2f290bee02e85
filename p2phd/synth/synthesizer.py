"""One synthesizer for every command that renders: a run's G on a device, how each region
gets its style, and one forward pass over a batch of inputs.

`synthesize`, `evaluate`, the editor and the Python API all render through `render`, whose
input is built by `ops.encode_input` as in training. Styles (runs with --instance-feat or
--label-feat) come from the style bank under a `StyleSpec` (`synth.styles`), or from what E
encodes from a photo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from p2phd.data.names import class_id
from p2phd.errors import ConfigError, DatasetError
from p2phd.ops import encode_input, unit_image
from p2phd.runtime import DeviceOptions, autocast
from p2phd.synth.bank import FeatureBank
from p2phd.synth.inputs import Input, SynthItem, fit_size, prepare_input
from p2phd.synth.run import Run
from p2phd.synth.styles import Style, StyleSpec, pinned_styles, region_features, regions
from p2phd.visual import to_uint8


class Synthesizer:
    """Renders label maps with a run's generator; G (and E) load on first use."""

    def __init__(self, run: Run, options: DeviceOptions | None = None) -> None:
        self.run, self.net = run, run.net
        self.options = options or DeviceOptions()
        self.device, self.precision = self.options.resolve()
        self._forward: Callable[[Tensor], Tensor] | None = None

    def __repr__(self) -> str:
        return f"Synthesizer({self.run!r}, {self.device}, {self.precision})"

    # -- styles ----------------------------------------------------------------------------

    @property
    def bank(self) -> FeatureBank:
        """The run's style bank (`p2phd cluster`); an error for runs without features."""
        self._need_features()
        return self.run.style_bank()

    def clusters(self, cls: int) -> int:
        """How many styles (clusters) class `cls` has; 0 for runs without features."""
        return self.bank.clusters(cls) if self.net.use_features else 0

    def region_ids(self, label: np.ndarray, inst: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """Region ids `[U]` of a map pair (instances or classes, as the run pools), their
        classes `[U]` and each pixel's region index `[H*W]`."""
        pool = torch.from_numpy(self.net.pool_map(label, inst))
        ids, inverse, classes = regions(pool, torch.from_numpy(label))
        return ids.numpy(), classes.numpy(), inverse.numpy()

    def styles(self, r: Input, spec: StyleSpec, variation: int = 0) -> Tensor:
        """`[F, H, W]` feature maps of one input: each region's style under `spec`."""
        ids, classes, inverse = self.region_ids(r.label, r.inst)
        vectors = region_features(ids, classes, self.bank, spec, r.item.key, variation)
        h, w = r.label.shape
        return vectors[torch.from_numpy(inverse)].reshape(h, w, -1).permute(2, 0, 1)

    def pinned(self, r: Input, spec: StyleSpec, variation: int = 0) -> dict[int, Style]:
        """Region id -> the style `spec` gives it in this input (see `styles.pinned`)."""
        ids, classes, _ = self.region_ids(r.label, r.inst)
        return pinned_styles(ids, classes, self.bank, spec, r.item.key, variation)

    def encoded(self, r: Input) -> Tensor:
        """`[F, H, W]` feature maps E encodes from `r.photo`, averaged over each region."""
        if r.photo is None:
            raise ConfigError(f"{r.item.label}: styles from a photo need its photo")
        self._need_features()
        encoder = self.run.encoder(self.device)
        photo = torch.from_numpy(np.ascontiguousarray(r.photo)).permute(2, 0, 1)[None]
        pool = torch.from_numpy(self.net.pool_map(r.label, r.inst))[None]
        with torch.inference_mode():
            return encoder(unit_image(photo.to(self.device)), pool.to(self.device))[0]

    # -- rendering -------------------------------------------------------------------------

    def render(
        self, inputs: Sequence[Input], features: Sequence[Tensor] | None = None
    ) -> list[np.ndarray]:
        """One forward pass of G over inputs of one size: uint8 `[H, W, C]` images (`[H, W]`
        for grey). `features`: each input's `[F, H, W]` maps (runs with features)."""
        net = self.net
        if net.label_nc == 0:
            label = torch.stack([torch.from_numpy(r.label).permute(2, 0, 1) for r in inputs])
            label = unit_image(label.to(self.device))
        else:
            label = torch.stack([torch.from_numpy(r.label) for r in inputs]).to(self.device)
        inst = None
        if net.instance:
            maps = [r.inst for r in inputs if r.inst is not None]
            inst = torch.stack([torch.from_numpy(m) for m in maps]).to(self.device)
        feature_map = None
        if net.use_features:
            if features is None or len(features) != len(inputs):
                raise ConfigError("this run renders with features: give one per input")
            feature_map = torch.stack([f.to(self.device) for f in features])
        with torch.inference_mode(), autocast(self.precision, self.device):
            fake = self._generator()(encode_input(label, inst, feature_map, label_nc=net.label_nc))
        return [to_uint8(image) for image in fake]

    def render_unit(self, values: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One forward pass over measured fields of one size: `[C, H, W]` float32 in
        [-1, 1] in, G's `[C', H, W]` float32 in [-1, 1] out (the run maps the units)."""
        x = torch.stack([torch.from_numpy(np.ascontiguousarray(v)) for v in values])
        with torch.inference_mode(), autocast(self.precision, self.device):
            fake = self._generator()(x.to(self.device).float())
        return [image.float().clamp(-1, 1).cpu().numpy() for image in fake]

    def field(self, values: np.ndarray, *, width: int | None = None) -> np.ndarray:
        """Render one measured field given in physical units (`[H, W]` or `[C, H, W]`), as
        `p2phd synthesize` renders a file: the output in physical units, `[C', H, W]`
        float64 at the input's own size."""
        from p2phd.data.fields import check_finite, normalise, physical, resize_field

        spec = self.net.fields
        if spec is None:
            raise ConfigError(f"{self.run.root}: was trained on images; pass a label map")
        array = np.asarray(values, dtype=np.float64)
        array = array[None] if array.ndim == 2 else array
        if array.ndim != 3 or len(array) != spec.input.channels:
            raise DatasetError(
                f"values: expected [H, W] or [{spec.input.channels}, H, W], got "
                f"{list(np.shape(values))}"
            )
        array, _ = check_finite(Path("<values>"), array, spec.fill)
        _, h, w = array.shape
        size = fit_size(w, h, self.net, width, Path("<values>"))
        unit, _ = normalise(spec.input, resize_field(array, *size))
        out = self.render_unit([unit])[0]
        return resize_field(physical(spec.output, out), w, h)

    def __call__(
        self,
        label: np.ndarray,
        inst: np.ndarray | None = None,
        *,
        style: StyleSpec | None = None,
        photo: np.ndarray | None = None,
        relabel: Sequence[tuple[int | str, int | str]] = (),
        relabel_instance: Sequence[tuple[int, int | str]] = (),
        width: int | None = None,
        key: str = "array",
    ) -> np.ndarray:
        """Render one label map given as an array, as `p2phd synthesize` renders a file.

        `label`: `[H, W]` integer class ids (for runs on RGB inputs, `[H, W, 3]` uint8);
        `inst`: `[H, W]` integer instance ids (runs with instance maps); `style`: how regions
        pick their styles (default: random, seed 0); `photo`: `[H, W, 3]` uint8 whose regions
        E encodes as the styles instead; `relabel`: (class, class) pairs by number or name,
        every pixel of the first becoming the second; `relabel_instance`: (instance id,
        class); `width`: resize by the one size rule (default: the map's size, which must be
        a multiple of the run's 2^downsamplings); `key` seeds the random styles as a file's
        name does. Returns the image `[H', W', C]` uint8 (`[H', W']` for grey)."""
        net = self.net
        if net.fields is not None:
            return self.field(label, width=width)
        where = Path(f"<{key}>")
        label = _id_array(label, "label", rgb=net.label_nc == 0)
        if net.instance and inst is None:
            raise ConfigError("this run uses instance maps: pass inst")
        inst_map = _id_array(inst, "inst") if net.instance and inst is not None else None
        names, nc = net.class_names, net.label_nc
        classes = [(_cls(s, names, nc), _cls(d, names, nc)) for s, d in relabel]
        objects = [(int(i), _cls(d, names, nc)) for i, d in relabel_instance]
        if (classes or objects) and nc == 0:
            raise ConfigError("relabel needs label maps; this run takes RGB input images")
        size = fit_size(label.shape[1], label.shape[0], net, width, where)
        item = SynthItem(key, where, where if inst_map is not None else None)
        r = prepare_input(item, label, inst_map, photo, net, size, classes, objects)
        features = None
        if net.use_features:
            features = [
                self.encoded(r) if photo is not None else self.styles(r, style or StyleSpec())
            ]
        return self.render([r], features)[0]

    def _generator(self) -> Callable[[Tensor], Tensor]:
        if self._forward is None:
            G: nn.Module = self.run.generator(self.device)
            self._forward = torch.compile(G, fullgraph=True) if self.options.compile else G
        return self._forward

    def _need_features(self) -> None:
        if not self.net.use_features:
            raise ConfigError(
                f"{self.run.root}: was trained without instance features (--instance-feat / "
                "--label-feat), so its regions have no styles"
            )


def _id_array(array: np.ndarray | None, what: str, *, rgb: bool = False) -> np.ndarray:
    """An array given to the API as the map `what` must be: `[H, W]` integers (or for RGB
    input `[H, W, 3]` uint8)."""
    value = np.asarray(array)
    got = f"got {value.dtype} {list(value.shape)}"
    if rgb:
        if value.ndim != 3 or value.dtype != np.uint8:
            raise DatasetError(f"{what}: expected an [H, W, 3] uint8 image, {got}")
        return value
    if value.ndim != 2 or not np.issubdtype(value.dtype, np.integer):
        raise DatasetError(f"{what}: expected an [H, W] array of integer ids, {got}")
    return value.astype(np.int64)


def _cls(value: int | str, names: tuple[str, ...], label_nc: int) -> int:
    return class_id(str(value), names, label_nc, "relabel")
