"""Reads a prepped dataset (see `p2phd.data.prep`) for training.

A sample is `{"label", "inst", "image", "index"}`: the label map as int32 `[H, W]` (or for
RGB-input datasets the input photo as uint8 `[input_nc, H, W]`), the instance map as int32
`[H, W]` (only with instance maps), the photo as uint8 `[output_nc, H, W]` (RGB, or grey
with one channel). Photos stay uint8 until they
reach the device, a quarter of the bytes of float.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from p2phd.config import NetConfig
from p2phd.data.augment import Augment, AugmentParams, apply_field, apply_ids, apply_rgb
from p2phd.data.fields import read_npy, zero_of
from p2phd.data.io import check_ids, read_id_map, read_rgb, to_channels
from p2phd.data.manifest import read_manifest
from p2phd.errors import ConfigError, DatasetError

K = TypeVar("K")
SampleKey = tuple[int, int]  # (epoch, index): the sample's augmentation depends on both


class PreppedDataset(Dataset[dict[str, Any]]):
    """One split of a prepped dataset, with the training augmentation."""

    def __init__(
        self,
        root: Path,
        split: str,
        augment: Augment,
        *,
        seed: int,
        input_nc: int = 3,
        output_nc: int = 3,
        instance_classes: bool = False,
    ) -> None:
        """`instance_classes`: instance ids below the class divisor are class ids, as
        instance features read them, and are checked against label_nc like objects."""
        self.root = Path(root)
        self.instance_classes = instance_classes
        self.manifest = read_manifest(self.root)
        entry = self.manifest.splits.get(split)
        if entry is None or not entry.items:
            raise DatasetError(f"{self.root}: has no {split!r} items; prep a {split}_* source")
        if not entry.has_images:
            raise DatasetError(f"{self.root}/{split}: has no photos (img/) to train on")
        self.split = split
        self.items = entry.items
        self.augment = augment
        self.seed = seed
        self.input_nc, self.output_nc = input_nc, output_nc  # photos as RGB or grey
        self.label_nc = self.manifest.label_nc
        self.instance = self.manifest.instance

    def __len__(self) -> int:
        return len(self.items)

    def path(self, kind: str, index: int) -> Path:
        suffix = ".npy" if self.manifest.kind == "field" else ".png"
        return self.root / self.split / kind / f"{self.items[index].key}{suffix}"

    def sample_sizes(self) -> set[tuple[int, int]]:
        """The distinct (width, height) of the samples after the load resize and the crop."""
        if self.augment.crop_size is not None:
            return {(self.augment.crop_size, self.augment.crop_size)}
        return {self.augment.load_size(it.width, it.height) for it in self.items}

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        epoch, index = key
        item = self.items[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        params = self.augment.draw(rng, item.width, item.height)
        sample: dict[str, Any] = {"index": index}
        if self.manifest.fields is not None:
            return {**sample, **self._fields(params, index)}
        if self.label_nc == 0:
            path = self.path("input", index)
            photo = self._sized(path, read_rgb(path), index)
            sample["label"] = torch.from_numpy(
                to_channels(apply_rgb(params, photo), self.input_nc)
            ).permute(2, 0, 1)
        else:
            path = self.path("label", index)
            label = check_ids(
                path, read_id_map(path), "label", self.label_nc, "prep the dataset again"
            )
            label = self._sized(path, label, index)
            sample["label"] = torch.from_numpy(apply_ids(params, label).astype(np.int32))
        if self.instance:
            path = self.path("inst", index)
            inst = check_ids(
                path, read_id_map(path, "instance map"), "inst", self.label_nc,
                divisor=self.manifest.class_divisor, objects_only=not self.instance_classes,
            )  # fmt: skip
            inst = self._sized(path, inst, index)
            sample["inst"] = torch.from_numpy(apply_ids(params, inst).astype(np.int32))
        path = self.path("img", index)
        image = to_channels(
            apply_rgb(params, self._sized(path, read_rgb(path), index)), self.output_nc
        )
        sample["image"] = torch.from_numpy(image).permute(2, 0, 1).contiguous()
        return sample

    def _sized(self, path: Path, array: np.ndarray, index: int) -> np.ndarray:
        """`array` if it has the size dataset.json gives its item: a file changed after prep
        (or a damaged dataset.json) would be cropped and resized as another size."""
        item = self.items[index]
        if array.shape[:2] != (item.height, item.width):
            raise DatasetError(
                f"{path}: is {array.shape[1]}x{array.shape[0]}, but dataset.json says "
                f"{item.width}x{item.height}; the file changed after prep: prep the dataset again"
            )
        return array

    def _fields(self, params: AugmentParams, index: int) -> dict[str, Tensor]:
        """Input and target as float32 `[C, H, W]` in [-1, 1], augmented alike."""
        assert self.manifest.fields is not None
        out = {}
        for key, folder, scale in (
            ("label", "input", self.manifest.fields.input),
            ("image", "img", self.manifest.fields.output),
        ):
            path = self.path(folder, index)
            values = read_npy(path)
            expected = (scale.channels, self.items[index].height, self.items[index].width)
            if values.shape != expected or values.dtype != np.float32:
                raise DatasetError(
                    f"{path}: holds {values.dtype} {tuple(values.shape)}, not the float32 "
                    f"{expected} dataset.json says; prep the dataset again"
                )
            out[key] = torch.from_numpy(apply_field(params, values, zero_of(scale)))
        return out


def check_fits(dataset: PreppedDataset, net: NetConfig) -> None:
    """The data feeds the nets of `net`: no class beyond theirs, instance maps where they
    take them, and sizes they keep (multiples of `net.size_multiple` after the load resize)."""
    root, prepped = dataset.root, dataset.label_nc
    fields = dataset.manifest.fields
    if (net.fields is None) != (fields is None):
        held = "measured fields" if fields is not None else "images"
        raise DatasetError(
            f"{root}: holds {held}, but the run was trained on "
            f"{'measured fields' if net.fields is not None else 'images'}; use data like "
            "its training data"
        )
    if fields is not None and fields != net.fields:
        raise DatasetError(
            f"{root}: maps its values to [-1, 1] otherwise than the run's data ({fields} "
            f"!= {net.fields}); prep it with the run's --in-range/--out-range and scales"
        )
    if (net.label_nc == 0) != (prepped == 0):
        kinds = {True: "RGB input images (label_nc 0)", False: "label maps"}
        raise DatasetError(
            f"--label-nc {net.label_nc}: {root} holds {kinds[prepped == 0]} but the run takes "
            f"{kinds[net.label_nc == 0]}; use data like its training data (a new run: "
            f"--label-nc {prepped}, or leave it out)"
        )
    if prepped > net.label_nc:
        raise DatasetError(
            f"--label-nc {net.label_nc}: {root} was prepped with label_nc {prepped}, more "
            f"classes than the run's {net.label_nc}; use data with the run's classes (a new "
            f"run: --label-nc {prepped}, or leave it out)"
        )
    if net.instance and not dataset.instance:
        raise DatasetError(
            f"--instance: {root} has no instance maps, and the run takes them; prep a "
            "source with *_inst/ folders (a new run: --no-instance)"
        )
    multiple = net.size_multiple
    bad = sorted(s for s in dataset.sample_sizes() if s[0] % multiple or s[1] % multiple)
    if bad:
        raise DatasetError(
            f"{root}: images of {bad[0][0]}x{bad[0][1]} are not multiples of {multiple} "
            "(2^downsamplings of G, and of E with features); prep with --multiple "
            f"{multiple}, or pick --load-width / --crop-size accordingly"
        )


def size_batches(
    keys: Iterable[K], size: Callable[[K], Hashable], batch_size: int
) -> list[list[K]]:
    """`keys` in batches of up to `batch_size` whose items share one size (for inference
    over inputs of mixed sizes); items keep their order within a size."""
    groups: dict[Hashable, list[K]] = {}
    for key in keys:
        groups.setdefault(size(key), []).append(key)
    return [g[s : s + batch_size] for g in groups.values() for s in range(0, len(g), batch_size)]


def steps_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Steps of one epoch: the full global batches of `n` items (the tail is dropped)."""
    steps = n // (batch_size * world_size)
    if steps == 0:
        raise ConfigError(
            f"--batch-size {batch_size} x {world_size} process(es) is more than the "
            f"{n} training items; use a smaller batch"
        )
    return steps


class EpochBatchSampler(Sampler[list[SampleKey]]):
    """Batches of (epoch, index) from global step `start_step` on, without end.

    Each epoch is a fresh permutation seeded by (seed, epoch); the last incomplete batch is
    dropped (a different tail each epoch, unlike the reference, which never sees its tail).
    Under DDP, global batch b of an epoch is split into `world_size` consecutive slices and
    rank r takes slice r, so the ranks together see exactly the single-process batch.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.rank, self.world_size = start_step, rank, world_size
        self.steps_per_epoch = steps_per_epoch(n, batch_size, world_size)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        step = self.start_step
        global_batch = self.batch_size * self.world_size
        order, order_epoch = np.arange(0), -1
        while True:
            epoch, b = divmod(step, self.steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = (
                    np.random.default_rng([self.seed, epoch]).permutation(self.n),
                    epoch,
                )
            chunk = order[b * global_batch : (b + 1) * global_batch]
            mine = chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            yield [(epoch, int(i)) for i in mine]
            step += 1

    def __len__(self) -> int:  # DataLoader asks; the stream is endless
        return 2**62
