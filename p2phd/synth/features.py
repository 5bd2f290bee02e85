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

import torch
from torch import Tensor

from p2phd.config import NetConfig
from p2phd.data.augment import Augment
from p2phd.data.dataset import PreppedDataset, check_fits, size_batches
from p2phd.data.names import class_name
from p2phd.errors import CheckpointError, ConfigError
from p2phd.limits import check_seed, check_side
from p2phd.ops import instance_class, segment_mean, unit_image
from p2phd.runtime import DeviceOptions, autocast
from p2phd.synth.bank import CLUSTERS, FEATURES, bank_key, key_class, load_bank_file, save_bank
from p2phd.synth.run import Run


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
    classes = ids if net.style_pool == "label" else instance_class(ids, net.class_divisor)
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
    names: dict[int, str]  # class -> its name ("class 7" when the run has no names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "images": self.images,
            "classes": {str(c): n for c, n in self.classes.items()},
        }


def encode_features(
    run: Run,
    data: Path,
    *,
    split: str = "train",
    batch_size: int = 4,
    device: DeviceOptions | None = None,
    width: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FeatureReport:
    """Encode every instance of a prepped split with the run's E (torch.compile'd as one graph
    with `device.compile`); write features.safetensors.

    Images are resized as training resized them (to its --load-width), or to `width`."""
    if batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    options = device or DeviceOptions()
    dev, prec = options.resolve()
    net, cfg = run.net, run.config
    if width is not None and width < net.min_side:
        raise ConfigError(f"--width {width}: must be at least {net.min_side} for this run's nets")
    check_side(width, "--width")
    encoder: Callable[..., Tensor] = run.encoder(dev)
    if options.compile:
        encoder = torch.compile(encoder, fullgraph=True)
    load_width = width if width is not None else cfg.data.load_width
    augment = Augment(load_width, None, False, net.size_multiple)  # the training size
    dataset = PreppedDataset(
        Path(data), split, augment, seed=0, input_nc=net.input_nc, output_nc=net.output_nc,
        instance_classes=net.style_pool == "instance",
    )  # fmt: skip
    check_fits(dataset, net)
    rows: dict[int, list[Tensor]] = {}
    sources: dict[int, list[Tensor]] = {}
    sizes = [augment.load_size(it.width, it.height) for it in dataset.items]
    done = 0
    with torch.inference_mode():
        for indices in size_batches(range(len(dataset)), sizes.__getitem__, batch_size):
            samples = [dataset[(0, i)] for i in indices]
            image = unit_image(torch.stack([s["image"] for s in samples]).to(dev))
            pool = torch.stack([net.pool_map(s["label"], s.get("inst")) for s in samples])
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
        "pool": net.style_pool,
        "columns": "feat_num features, then the area as a fraction of the image",
        "source_columns": "image index in the split, region id",
        "checkpoint": str(run.checkpoint.path.resolve()),
        "classes": {str(c): n for c, n in counts.items()},
    }
    path = run.features_path
    save_bank(tensors, path, meta)
    names = {c: class_name(c, run.class_names) for c in counts}
    return FeatureReport(path, len(dataset), counts, names)


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
    """k-means per class (k = min(instances, k)) over instances larger than `min_area`, of
    the features.safetensors in the folder `run` (named with the run's class names)."""
    import sklearn
    from sklearn.cluster import KMeans

    if k < 1 or not 0 <= min_area < 1 or n_init < 1:
        raise ConfigError("--k and --n-init must be >= 1 and --min-area in [0, 1)")
    check_seed(seed)
    path = Path(run) / FEATURES
    if not Path(run).is_dir():
        raise CheckpointError(
            f"{run}: not a run folder; pass the run whose features encode-features wrote"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; run p2phd encode-features {run} DATA first")
    opened = Run.open(run) if (Path(run) / "config.json").is_file() else None
    names = opened.class_names if opened else ()
    # each row: the encoder's features, then the instance's area
    features = load_bank_file(path, opened.net.feat_num + 1 if opened else None)
    tensors: dict[str, Tensor] = {}
    clusters: dict[int, dict[str, Any]] = {}
    skipped: dict[int, str] = {}
    for name in sorted(n for n in features if n.startswith("label_")):
        c, rows = key_class(name), features[name].double()
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
