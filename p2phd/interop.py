"""Import NVIDIA/pix2pixHD checkpoints and cluster files into a p2phd run, safely.

`.pth` files are read only through `torch.load(weights_only=True)`. The reference's cluster
file (`features_clustered_010.npy`, a pickled dict of arrays) is read by a restricted
unpickler that admits numpy arrays, dtypes, scalars and plain containers and nothing else,
so no code in the file can run. Every reference key must map onto our nets and every tensor
must have its shape: a key that does not map, a missing key or a shape mismatch is an error
listing them, never the reference's silent partial load.
"""

from __future__ import annotations

import dataclasses
import io
import pickle  # only for the restricted reader of the reference's cluster file
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from p2phd.atomic import atomic_dir, write_json_atomic
from p2phd.checkpoint import (
    RunDir,
    config_record,
    load_strict,
    save_checkpoint,
)
from p2phd.config import LossConfig, NetConfig, RunOptions, Stage, TrainConfig
from p2phd.datasets import cityscapes
from p2phd.errors import CheckpointError, ConfigError
from p2phd.nets.discriminator import build_discriminator
from p2phd.nets.encoder import build_encoder
from p2phd.nets.generator import build_generator
from p2phd.synth.features import CLUSTERS, bank_key, save_bank
from p2phd.weights import key_mismatches, read_state_dict, sha256_file


def reference_config(netg: str, flags: dict[str, dict[str, Any]]) -> TrainConfig:
    """The run's config from the reference's options (its defaults where not given: label_nc
    35, ngf 64, 4 downsamplings, 9 blocks, 1 enhancer for --netG local, num_D 2). A global G
    becomes a global-stage run, a local one a joint-stage run; label_nc 35 is Cityscapes."""
    if netg not in ("global", "local"):
        raise ConfigError(f"--netg {netg}: use global or local")
    net = dict(flags.get("net", {}))
    if netg == "local":
        net.setdefault("n_local_enhancers", 1)
    elif net.get("n_local_enhancers"):
        raise ConfigError("--n-local-enhancers: only with --netg local")
    if net.get("label_nc", NetConfig().label_nc) == cityscapes.DATASET.label_nc:
        net.setdefault("class_names", cityscapes.CLASSES)
    stage: Stage = "joint" if net.get("n_local_enhancers") else "global"
    run = RunOptions(**flags.get("run", {}))
    loss = LossConfig(**flags.get("loss", {}))
    if loss.vgg_loss and run.vgg_weights is not None:
        loss = dataclasses.replace(loss, vgg_sha256=sha256_file(Path(run.vgg_weights)))
    return TrainConfig(stage=stage, net=NetConfig(**net), loss=loss, run=run)


def reference_name(ours: str, role: str, net: NetConfig, ganfeat: bool) -> str:
    """The reference's state-dict key for one of ours: its modules in its order (design.md §4)."""
    if role == "E":
        return re.sub(r"^layers\.", "model.", ours)
    if role == "D":
        m = re.match(r"scales\.(\d+)\.layers\.(\d+)\.(\d+)\.(.+)$", ours)
        if m is None:
            raise ValueError(ours)
        scale, layer, module, rest = (int(m[1]), int(m[2]), int(m[3]), m[4])
        if ganfeat:  # separate Sequentials scale<k>_layer<j>
            return f"scale{scale}_layer{layer}.{module}.{rest}"
        flat = module if layer == 0 else 2 + 3 * (layer - 1) + module  # one flat Sequential
        return f"layer{scale}.{flat}.{rest}"
    if net.n_local_enhancers == 0:
        trunk = 4 + 6 * net.n_downsample_global + net.n_blocks_global
        ours = re.sub(r"^head\.(\d+)\.", lambda m: f"model.{trunk + int(m[1])}.", ours)
        return re.sub(r"^trunk\.", "model.", ours)
    ours = re.sub(r"^global_generator\.trunk\.", "model.", ours)
    part = {"front": 1, "back": 2}  # enhancer n's model<n>_1 and model<n>_2
    return re.sub(
        r"^enhancers\.(\d+)\.(front|back)\.", lambda m: f"model{int(m[1]) + 1}_{part[m[2]]}.", ours
    )


def _read_pth(path: Path) -> dict[str, Tensor]:
    """A reference state dict, through torch's weights-only unpickler (DataParallel's
    `module.` prefixes dropped)."""
    return {k.removeprefix("module."): v for k, v in read_state_dict(path).items()}


def map_state(
    module: nn.Module,
    state: dict[str, Tensor],
    role: str,
    net: NetConfig,
    ganfeat: bool,
    where: Path,
) -> dict[str, Tensor]:
    """Our state dict for `module` from a reference one; every key and shape must match."""
    own = module.state_dict()
    names = {ours: reference_name(ours, role, net, ganfeat) for ours in own}
    problems = key_mismatches({names[k]: v.shape for k, v in own.items()}, state)
    if problems:
        raise CheckpointError(
            f"{where}: does not fit the options given ({problems}); "
            "repeat the reference's options (--netg, --ngf, --label-nc, "
            "--no-instance, --num-d, ...)"
        )
    return {ours: state[ref] for ours, ref in names.items()}


_NUMPY = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray"}
_ALLOWED = {"_reconstruct", "ndarray", "dtype", "scalar"}


class _ArraysOnly(pickle.Unpickler):
    """Resolves only numpy's array, dtype and scalar constructors; anything else is refused
    before it could be called (the pickle documentation's "restricting globals")."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _NUMPY and name in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


def read_cluster_file(path: Path, feat_num: int) -> dict[int, np.ndarray]:
    """The reference's `features_clustered_*.npy`: {label: centres [k, feat_num]}."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise CheckpointError(f"{path}: .npy format {version} is not supported")
            shape, _, dtype = read_header(f)
            if dtype != np.dtype(object) or shape != ():
                raise CheckpointError(f"{path}: not a pickled dict (dtype {dtype}, shape {shape})")
            loaded = _ArraysOnly(io.BytesIO(f.read()), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: carries {exc}, which a cluster file never holds; "
            "refusing it (nothing in it was run)"
        ) from None
    except (OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a readable .npy cluster file ({exc})") from exc
    data = loaded.item() if isinstance(loaded, np.ndarray) and loaded.dtype == object else loaded
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: holds a {type(data).__name__}, not a dict of centres")
    centres = {}
    for label, value in data.items():
        array = np.asarray(value)
        if not isinstance(label, int | np.integer) or array.ndim != 2 or array.shape[1] != feat_num:
            raise CheckpointError(f"{path}: entry {label!r} is not [k, {feat_num}] centres")
        centres[int(label)] = array.astype(np.float32)
    return centres


@dataclass(frozen=True, slots=True)
class ImportReport:
    run: Path
    nets: list[str]
    clusters: int | None  # classes with imported clusters
    sha256: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run),
            "nets": self.nets,
            "clusters": self.clusters,
            "sha256": self.sha256,
        }


def import_reference(
    ckpt_dir: Path,
    run: Path,
    cfg: TrainConfig,
    *,
    which: str = "latest",
    clusters: Path | None = None,
) -> ImportReport:
    """Write a p2phd run from `<which>_net_{G,D,E}.pth` (and a cluster file) of the reference.

    A global generator becomes a global-stage run (train-local can start from it); a local
    one a joint-stage run (train-joint fine-tunes it). D and E are imported when present.
    """
    ckpt_dir, runs = Path(ckpt_dir), RunDir(Path(run))
    files = {role: ckpt_dir / f"{which}_net_{role}.pth" for role in ("G", "D", "E")}
    if not files["G"].is_file():
        raise CheckpointError(
            f"{files['G']}: not found; pass the reference's checkpoint "
            "folder (checkpoints/<name>) and --which-epoch"
        )
    if runs.root.exists() and (not runs.root.is_dir() or any(runs.root.iterdir())):
        raise ConfigError(f"--run {run}: exists and is not empty; import into a new folder")
    net, stage = cfg.net, cfg.stage
    builders = {"G": build_generator, "D": build_discriminator, "E": build_encoder}
    tensors, sha = {}, {}
    for role, build in builders.items():
        if (role == "E" and not net.use_features) or not files[role].is_file():
            continue
        module = build(net)
        state = map_state(
            module, _read_pth(files[role]), role, net, cfg.loss.ganfeat_loss, files[role]
        )
        load_strict(module, state, str(files[role]))
        tensors[role] = module.state_dict()
        sha[files[role].name] = sha256_file(files[role])
    imported = list(tensors)
    meta = {  # weights only: training from here starts fresh Adam moments
        "stage": stage,
        "epoch": 0,
        "lr": cfg.optim.lr,
        "nonfinite_skipped": 0,
        "imported": {"from": str(ckpt_dir.resolve()), "nets": imported, "sha256": sha},
    }
    history = [{"stage": stage, "event": "import", "step": 0, "from": str(ckpt_dir.resolve())}]
    record = config_record(cfg, history)
    found = clusters or next(iter(sorted(ckpt_dir.glob("features_clustered_*.npy"))), None)
    centres = read_cluster_file(found, net.feat_num) if found and net.use_features else None
    with atomic_dir(runs.root) as tmp:  # the run appears complete, or not at all
        staged = RunDir(tmp)
        save_checkpoint(staged, 0, tensors, meta, record, keep_last=1)
        write_json_atomic(staged.config, record)
        if centres is not None:
            assert found is not None
            save_bank(
                {bank_key("label", c): torch.from_numpy(v) for c, v in centres.items()},
                staged.root / CLUSTERS,
                {
                    "schema_version": 1,
                    "imported_from": str(found),
                    "sha256": sha256_file(found),
                    "classes": {str(c): {"clusters": len(v)} for c, v in centres.items()},
                    "skipped": {},
                },
            )
    count = len(centres) if centres is not None else None
    return ImportReport(runs.root, imported, count, sha)
