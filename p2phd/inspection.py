"""`p2phd inspect`: look before you edit. What a label map holds (its classes and every
object, with the ids that --relabel-instance, --vary instance: and --style-map take), what a
run holds, and what a prepped dataset holds; as plain data for the CLI to show or print as
JSON."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from p2phd import datasets
from p2phd.config import FieldSpec
from p2phd.data.io import check_ids, read_id_map
from p2phd.data.manifest import MANIFEST, read_manifest
from p2phd.data.names import class_name
from p2phd.datasets.cityscapes import CLASSES as CITYSCAPES_CLASSES
from p2phd.datasets.cityscapes import is_cityscapes_name
from p2phd.errors import DatasetError
from p2phd.jsonfile import SchemaError, read_json
from p2phd.loss_terms import active_terms
from p2phd.synth.run import Run


def inspect_path(
    path: Path, inst: Path | None = None, classes: Path | None = None, checkpoint: str = "latest"
) -> dict[str, Any]:
    """A run folder (at `checkpoint`) or one of its checkpoint folders, a prepped dataset
    folder, or a label map (with its instance map)."""
    path = Path(path)
    if not path.exists() and "@" in path.name:  # RUN@best
        return inspect_run(Run.open(path, checkpoint))
    if path.is_dir() and (path / "config.json").is_file():
        return inspect_run(Run.open(path, checkpoint))
    if path.is_dir() and (path / MANIFEST).is_file():
        return inspect_data(path)
    if path.is_file():
        return inspect_label(path, inst, classes)
    raise DatasetError(
        f"{path}: not a run folder, a prepped dataset or a label map; pass one of those"
    )


def _names_for(label: Path, classes: Path | None) -> tuple[tuple[str, ...], int]:
    """Class names and the instance-id divisor: from --classes (a run or a dataset), else
    from the run, prepped dataset or source folder that names its classes (the toy's
    toy.json) the label lies in, else Cityscapes' by the file name."""
    sources = [classes] if classes else list(label.resolve().parents)[:3]
    for folder in sources:
        if (folder / "config.json").is_file():
            net = Run.open(folder).net
            return net.class_names, net.class_divisor
        if (folder / MANIFEST).is_file():
            manifest = read_manifest(folder)
            return manifest.class_names, manifest.class_divisor
        for known in datasets.known():  # a source folder that names its classes (toy.json)
            names = known.folder_classes(folder) if known.folder_classes else None
            if names:
                return names, known.class_divisor
        if classes:
            raise DatasetError(f"--classes {classes}: not a run folder or a prepped dataset")
    return (CITYSCAPES_CLASSES if is_cityscapes_name(label.name) else ()), 1000


def inspect_label(
    label: Path, inst: Path | None = None, classes: Path | None = None
) -> dict[str, Any]:
    """The classes present (id, name, share of pixels) and every object of the instance map
    (id, class, area, bounding box x0, y0, x1, y1 inclusive)."""
    names, divisor = _names_for(label, classes)
    ids = check_ids(label, read_id_map(label), "label")
    present, counts = np.unique(ids, return_counts=True)
    report: dict[str, Any] = {
        "kind": "label map",
        "path": str(label),
        "size": [int(ids.shape[1]), int(ids.shape[0])],
        "classes": [
            {"id": int(c), "name": class_name(int(c), names), "share": round(n / ids.size, 5)}
            for c, n in zip(present.tolist(), counts.tolist(), strict=True)
        ],
    }
    if inst is None:
        return report
    objects = check_ids(inst, read_id_map(inst, "instance map"), "inst")
    if objects.shape != ids.shape:
        raise DatasetError(
            f"{inst}: {objects.shape[1]}x{objects.shape[0]} but the label map is "
            f"{ids.shape[1]}x{ids.shape[0]}; pass the pair's instance map"
        )
    report["instances"] = _objects(objects, divisor, names)
    report["instance_path"] = str(inst)
    return report


def _objects(inst: np.ndarray, divisor: int, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every id >= divisor (an object; smaller ids are a class's "stuff") with its area and
    bounding box, computed for all objects at once."""
    found, inverse, area = np.unique(inst, return_inverse=True, return_counts=True)
    rows, cols = np.indices(inst.shape)
    inverse = inverse.reshape(-1)
    box = np.stack(
        [
            np.full(len(found), inst.shape[1]),
            np.full(len(found), inst.shape[0]),
            np.full(len(found), -1),
            np.full(len(found), -1),
        ]
    )
    np.minimum.at(box[0], inverse, cols.reshape(-1))
    np.minimum.at(box[1], inverse, rows.reshape(-1))
    np.maximum.at(box[2], inverse, cols.reshape(-1))
    np.maximum.at(box[3], inverse, rows.reshape(-1))
    return [
        {
            "id": int(i),
            "class": int(i) // divisor,
            "name": class_name(int(i) // divisor, names),
            "area": int(area[k]),
            "share": round(int(area[k]) / inst.size, 5),
            "box": [int(v) for v in box[:, k]],
        }
        for k, i in enumerate(found.tolist())
        if i >= divisor
    ]


def inspect_run(run: Run) -> dict[str, Any]:
    """Stage, step and epoch of the newest checkpoint, architecture and schedule, the data it
    was trained on, and the features and clusters it holds."""
    ckpt, cfg = run.checkpoint, run.config
    net, optim = cfg.net, cfg.optim
    report: dict[str, Any] = {
        "kind": "run",
        "path": str(run.root),
        "stage": cfg.stage,
        "checkpoint": str(ckpt.path),
        "step": ckpt.step,
        "epoch": ckpt.state.epoch + 1,
        "train_size": list(run.train_size) if run.train_size else None,
        "generator": {
            "ngf": net.ngf,
            "n_downsample_global": net.n_downsample_global,
            "n_blocks_global": net.n_blocks_global,
            "n_local_enhancers": net.n_local_enhancers,
            "norm": net.norm,
        },
        "discriminator": {"num_d": net.num_d, "n_layers_d": net.n_layers_d, "ndf": net.ndf},
        "features": (
            {"pool": net.style_pool, "feat_num": net.feat_num} if net.use_features else None
        ),
        "weights": {
            "raw": True,
            "ema": ckpt.has_average("G"),
            "ema_beta": optim.ema_beta,
            "ema_start": optim.ema_start,
            "used": run.weights,
        },
        "schedule": {
            "epochs": optim.epochs,
            "decay_epochs": optim.decay_epochs,
            "lr": optim.lr,
            "batch_size": optim.batch_size,
        },
        "losses": {
            "gan_mode": cfg.loss.gan_mode,
            "feature_matching": cfg.loss.ganfeat_loss,
            "vgg": cfg.loss.vgg_loss,
            "lambda_feat": cfg.loss.lambda_feat,
            "terms": list(active_terms(cfg.loss)),
        },
        "data": {
            "root": cfg.run.data_root,
            "label_nc": net.label_nc,
            "instance": net.instance,
            "class_names": list(net.class_names),
            "fields": _fields(net.fields),
        },
        "history": [{k: v for k, v in h.items() if k != "time"} for h in run.history()],
        "checkpoints": _checkpoints(run),
    }
    names = net.class_names
    for kind, file in (("encoded", run.features_path), ("clusters", run.clusters_path)):
        meta = file.with_suffix(".json")
        if meta.is_file():
            report[kind] = _bank_summary(meta, kind, names)
    return report


def _bank_summary(meta: Path, kind: str, names: tuple[str, ...]) -> dict[str, Any] | str:
    """Class name -> instances encoded (or clusters found) from a bank file's JSON summary,
    or why it cannot be read: inspect shows a damaged summary rather than stopping on it."""
    try:
        classes = read_json(meta, max_bytes=16 << 20).get("classes", {})
        summary = {}
        for c, v in classes.items():
            count = v if kind == "encoded" else v.get("clusters")
            if not (c.isdigit() and isinstance(count, int)):
                raise SchemaError(f"classes.{c[:20]}: expected a class id and a count")
            summary[class_name(int(c), names)] = count
        return summary
    except (OSError, SchemaError, AttributeError) as exc:
        again = "encode-features" if kind == "encoded" else "cluster"
        return f"{meta.name} unreadable ({exc}); run {again} again"


def _checkpoints(run: Run) -> list[dict[str, Any]]:
    """Every complete checkpoint of the run: what `--checkpoint` can name."""
    found = []
    latest = run.latest_path()
    for ckpt in run.checkpoints():
        saved = ckpt.state.saved_at
        found.append(
            {
                "name": ckpt.path.name,
                "step": ckpt.step,
                "epoch": ckpt.state.epoch + 1,
                "saved": time.strftime("%Y-%m-%d %H:%M", time.localtime(saved)) if saved else "",
                "bytes": sum(f.stat().st_size for f in ckpt.path.iterdir() if f.is_file()),
                "latest": ckpt.path == latest,
                "milestone": ckpt.milestone,
            }
        )
    return found


def inspect_data(data: Path) -> dict[str, Any]:
    """The manifest's summary: items and sizes per split, label_nc, names, instance maps."""
    manifest = read_manifest(data)
    splits = {}
    for split, entry in manifest.splits.items():
        sizes = sorted({(i.width, i.height) for i in entry.items})
        splits[split] = {
            "items": len(entry.items),
            "sizes": [list(s) for s in sizes[:5]],
            "photos": entry.has_images,
        }
    return {
        "kind": "dataset",
        "path": str(data),
        "dataset": manifest.dataset,
        "source_layout": manifest.source_layout,
        "label_nc": manifest.label_nc,
        "class_names": list(manifest.class_names),
        "instance": manifest.instance,
        "class_divisor": manifest.class_divisor,
        "splits": splits,
        "skipped": len(manifest.skipped),
        "fields": _fields(manifest.fields),
    }


def _fields(spec: FieldSpec | None) -> dict[str, Any] | None:
    """A measured-field mapping as JSON, with one line per side for people."""
    if spec is None:
        return None
    from p2phd.data.fields import describe_scale

    return {
        **dataclasses.asdict(spec),
        "described": {s: describe_scale(getattr(spec, s)) for s in ("input", "output")},
    }
