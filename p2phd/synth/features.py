"""Instance features after training: encode them per class, cluster them, load the bank.

`encode-features` runs E over the training set at the training resolution and keeps, per
class, one row per instance: its feature vector and its area as a fraction of the image.
`cluster` runs k-means per class over the instances larger than `min_area` (the reference's
1/64 of the image). Files are safetensors + JSON in the run folder; nothing is pickled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from p2phd.atomic import save_tensors
from p2phd.checkpoint import load_net, require_checkpoint, write_json_atomic
from p2phd.config import NetConfig
from p2phd.data.augment import Augment
from p2phd.data.dataset import PreppedDataset, check_fits, size_batches
from p2phd.data.names import class_name
from p2phd.errors import CheckpointError, ConfigError
from p2phd.ops import instance_class, segment_mean, unit_image
from p2phd.runtime import autocast, resolve_device, resolve_precision

FEATURES, CLUSTERS = "features.safetensors", "clusters.safetensors"


def bank_key(kind: str, label: int) -> str:
    """`label_026`, `mean_026`, `source_026`: per-class tensor names in the bank files."""
    return f"{kind}_{label:03d}"


def save_bank(tensors: dict[str, Tensor], path: Path, meta: dict[str, Any]) -> None:
    """Write a feature or cluster file (safetensors) and its JSON summary beside it."""
    save_tensors(path, tensors)
    write_json_atomic(path.with_suffix(".json"), meta)


def region_rows(features: Tensor, pool_map: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For one `[F, H, W]` pooled feature map and its `[H, W]` pooling map: the region ids
    `[U]`, each region's mean feature `[U, F]` and its area fraction `[U]` (no loop)."""
    flat = features.reshape(features.shape[0], -1).T.float()
    ids, _, means, sizes = segment_mean(flat, pool_map.reshape(-1))
    return ids, means, sizes / pool_map.numel()


def _collect(
    index: int,
    feats: Tensor,
    pool_map: Tensor,
    net: NetConfig,
    rows: dict[int, list[Tensor]],
    sources: dict[int, list[Tensor]],
) -> None:
    """Append one image's region rows, [features, area], to its classes' lists."""
    ids, means, areas = (t.cpu() for t in region_rows(feats, pool_map))
    classes = ids if net.label_feat else instance_class(ids, net.class_divisor)
    table = torch.cat([means, areas[:, None]], 1)
    for c in classes.unique().tolist():  # a handful of classes per image
        mask = classes == c
        rows.setdefault(c, []).append(table[mask])
        sources.setdefault(c, []).append(
            torch.stack([torch.full_like(ids[mask], index), ids[mask]], 1).long()
        )


@dataclass(frozen=True, slots=True)
class FeatureReport:
    path: Path
    images: int
    classes: dict[int, int]  # class -> instances

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "images": self.images,
            "classes": {str(c): n for c, n in self.classes.items()},
        }


def encode_features(
    run: Path,
    data: Path,
    *,
    split: str = "train",
    batch_size: int = 4,
    device: str = "auto",
    precision: str = "auto",
    width: int | None = None,
    compile: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> FeatureReport:
    """Encode every instance of a prepped split with the run's E (torch.compile'd as one graph
    with `compile`); write features.safetensors.

    Images are resized as training resized them (to its --load-width), or to `width`."""
    if batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    ckpt = require_checkpoint(run)
    net, cfg = ckpt.config.net, ckpt.config
    encoder: Callable[..., Tensor] = load_net(ckpt, "E", dev)
    if compile:
        encoder = torch.compile(encoder, fullgraph=True)
    if width is not None and width < net.size_multiple:
        raise ConfigError(f"--width {width}: must be at least {net.size_multiple}")
    load_width = width if width is not None else cfg.data.load_width
    augment = Augment(load_width, None, False, net.size_multiple)  # the training size
    dataset = PreppedDataset(
        Path(data), split, augment, seed=0, input_nc=net.input_nc, output_nc=net.output_nc
    )
    check_fits(dataset, net)
    rows: dict[int, list[Tensor]] = {}
    sources: dict[int, list[Tensor]] = {}
    sizes = [augment.load_size(it["width"], it["height"]) for it in dataset.items]
    done = 0
    with torch.inference_mode():
        for indices in size_batches(range(len(dataset)), sizes.__getitem__, batch_size):
            samples = [dataset[(0, i)] for i in indices]
            image = unit_image(torch.stack([s["image"] for s in samples]).to(dev))
            pool = torch.stack([s["inst" if net.instance_feat else "label"] for s in samples])
            with autocast(prec, dev):
                pooled = encoder(image, pool.to(dev))
            for i, feats, ids_map in zip(indices, pooled, pool, strict=True):
                _collect(i, feats, ids_map.to(dev), net, rows, sources)
            done += len(indices)
            if progress:
                progress(done, len(dataset))
    tensors = {bank_key("label", c): torch.cat(r) for c, r in sorted(rows.items())}
    tensors |= {bank_key("source", c): torch.cat(s) for c, s in sorted(sources.items())}
    counts = {c: int(sum(len(r) for r in rs)) for c, rs in sorted(rows.items())}
    meta = {
        "schema_version": 1,
        "feat_num": net.feat_num,
        "split": split,
        "images": len(dataset),
        "pool": "instance" if net.instance_feat else "label",
        "columns": "feat_num features, then the area as a fraction of the image",
        "source_columns": "image index in the split, region id",
        "checkpoint": str(ckpt.path.resolve()),
        "classes": {str(c): n for c, n in counts.items()},
    }
    path = Path(run) / FEATURES
    save_bank(tensors, path, meta)
    return FeatureReport(path, len(dataset), counts)


@dataclass(frozen=True, slots=True)
class ClusterReport:
    path: Path
    clusters: dict[int, dict[str, Any]]  # class -> name, instances, kept, clusters, inertia
    skipped: dict[int, str]  # class -> why it has no clusters
    names: dict[int, str]  # class -> its name ("class 7" when the run has no names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "clusters": {str(c): v for c, v in self.clusters.items()},
            "skipped": {str(c): v for c, v in self.skipped.items()},
        }


def cluster_features(
    run: Path, *, k: int = 10, min_area: float = 1 / 64, n_init: int = 10, seed: int = 0
) -> ClusterReport:
    """k-means per class (k = min(instances, k)) over instances larger than `min_area`."""
    import sklearn
    from sklearn.cluster import KMeans

    if k < 1 or not 0 <= min_area < 1 or n_init < 1:
        raise ConfigError("--k and --n-init must be >= 1 and --min-area in [0, 1)")
    path = Path(run) / FEATURES
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; run p2phd encode-features {run} DATA first")
    features = _load(path)
    names = _class_names(Path(run))
    tensors: dict[str, Tensor] = {}
    clusters: dict[int, dict[str, Any]] = {}
    skipped: dict[int, str] = {}
    for name in sorted(n for n in features if n.startswith("label_")):
        c, rows = int(name.removeprefix("label_")), features[name].double()
        tensors[bank_key("mean", c)] = rows[:, :-1].mean(0).float()
        kept = rows[rows[:, -1] > min_area, :-1].numpy()
        if len(kept) == 0:
            skipped[c] = (
                f"none of its {len(rows)} instances covers more than {min_area:.4g} of its image"
            )
            continue
        n = min(len(kept), k)
        km = KMeans(n_clusters=n, n_init=n_init, random_state=seed).fit(kept)
        tensors[bank_key("label", c)] = torch.from_numpy(km.cluster_centers_).float()
        clusters[c] = {
            "name": class_name(c, names),
            "instances": len(rows),
            "kept": len(kept),
            "clusters": n,
            "inertia": float(km.inertia_),
        }
    meta = {
        "schema_version": 1,
        "k": k,
        "min_area": min_area,
        "n_init": n_init,
        "seed": seed,
        "sklearn": sklearn.__version__,
        "classes": {str(c): v for c, v in clusters.items()},
        "skipped": {str(c): v for c, v in skipped.items()},
        "names": {str(c): class_name(c, names) for c in sorted([*clusters, *skipped])},
    }
    out = Path(run) / CLUSTERS
    save_bank(tensors, out, meta)
    named = {c: class_name(c, names) for c in [*clusters, *skipped]}
    return ClusterReport(out, clusters, skipped, named)


def _class_names(run: Path) -> tuple[str, ...]:
    """The run's class names (none for a folder that is not a run)."""
    return require_checkpoint(run).config.net.class_names if (run / "config.json").is_file() else ()


def _load(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable ({exc}); write it again") from exc


@dataclass(frozen=True)
class FeatureBank:
    """Cluster centres and class means as lookup tables for vectorised style sampling.

    `centers` `[total clusters, F]`; `offset[c]` where class c's centres start and `count[c]`
    how many it has (0: none); `means[c]` its mean feature (zeros for unseen classes).
    """

    centers: Tensor
    offset: np.ndarray
    count: np.ndarray
    means: Tensor

    @classmethod
    def load(cls, run: Path, label_nc: int, feat_num: int) -> FeatureBank:
        path = Path(run) / CLUSTERS
        if not path.is_file():
            raise CheckpointError(
                f"{path}: missing; run p2phd encode-features {run} DATA, then p2phd cluster "
                f"{run} (or give --style-from PHOTO)"
            )
        data = _load(path)
        size = max(label_nc, 1 + max((int(k[-3:]) for k in data), default=0))
        count, offset = np.zeros(size, np.int64), np.zeros(size, np.int64)
        means, centers = torch.zeros(size, feat_num), []
        total = 0
        for c in range(size):
            if bank_key("mean", c) in data:
                means[c] = data[bank_key("mean", c)]
            if bank_key("label", c) in data:
                centers.append(data[bank_key("label", c)])
                offset[c], count[c] = total, len(centers[-1])
                total += count[c]
        table = torch.cat(centers) if centers else torch.zeros(0, feat_num)
        return cls(table, offset, count, means)
