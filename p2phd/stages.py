"""The three training stages' configs: global, local (G1 frozen), joint (all together).

The paper trains G1 at half resolution, then the local enhancer G2 around the frozen G1 at
full resolution, then fine-tunes both. Here each stage's config is built from the options
given and from what the earlier stage left: the local stage takes G1's architecture from the
global run and refuses options that contradict it; the joint stage continues the local run
with its stored config, its learning-rate schedule and its step count.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from p2phd.checkpoint import RunDir, read_config_record, require_checkpoint
from p2phd.config import (
    DataConfig,
    LossConfig,
    NetConfig,
    OptimConfig,
    RunOptions,
    TrainConfig,
)
from p2phd.data.prep import read_manifest
from p2phd.errors import CheckpointError, ConfigError

Flags = dict[str, dict[str, Any]]

# Options of the local stage that differ from NetConfig's defaults (the reference's 1024p
# scripts: --netG local --ngf 32 --num_D 3).
LOCAL_DEFAULTS = {"n_local_enhancers": 1, "num_d": 3}
# What the local stage must share with the global run for G1 and D to load.
SHARED_WITH_GLOBAL = (
    "label_nc",
    "input_nc",
    "output_nc",
    "instance",
    "n_downsample_global",
    "n_blocks_global",
    "norm",
    "n_layers_d",
    "ndf",
    "instance_feat",
    "label_feat",
    "feat_num",
    "nef",
    "n_downsample_e",
    "class_divisor",
)


def _with_dataset(net: dict[str, Any], data_root: Path) -> dict[str, Any]:
    """`label_nc` and `instance` default to the prepped dataset's; contradictions are refused."""
    manifest = read_manifest(Path(data_root))
    net = {"label_nc": manifest["label_nc"], "instance": manifest["instance"], **net}
    prepped = manifest["label_nc"]
    if 0 < net["label_nc"] < prepped or (net["label_nc"] == 0) != (prepped == 0):
        raise ConfigError(
            f"--label-nc {net['label_nc']}: {data_root} was prepped with "
            f"label_nc {prepped}; pass --label-nc {prepped}"
        )
    if net["instance"] and not manifest["instance"]:
        raise ConfigError(f"--instance: {data_root} has no instance maps; pass --no-instance")
    return net


def _config(stage: str, net: dict[str, Any], data_root: Path, flags: Flags) -> TrainConfig:
    return TrainConfig(
        stage=stage,  # type: ignore[arg-type]
        net=NetConfig(**net),
        loss=LossConfig(**flags.get("loss", {})),
        data=DataConfig(**flags.get("data", {})),
        optim=OptimConfig(**flags.get("optim", {})),
        run=RunOptions(data_root=str(data_root), **flags.get("run", {})),
    )


def global_config(data_root: Path, flags: Flags) -> TrainConfig:
    """train-global: G1 with the multi-scale D at the training resolution."""
    return _config("global", _with_dataset(dict(flags.get("net", {})), data_root), data_root, flags)


def local_config(data_root: Path, global_run: Path, flags: Flags) -> TrainConfig:
    """train-local: G2 around the global run's G1, which must fit: G1's width is
    ngf * 2^n_local_enhancers and the rest of its architecture is the global run's."""
    g = require_checkpoint(global_run).config
    if g.stage != "global":
        raise ConfigError(f"--global {global_run}: is a {g.stage} run, not a train-global run")
    given = dict(flags.get("net", {}))
    n_local = given.get("n_local_enhancers", LOCAL_DEFAULTS["n_local_enhancers"])
    if n_local < 1:
        raise ConfigError("--n-local-enhancers: the local stage needs at least 1")
    inherited = {name: getattr(g.net, name) for name in SHARED_WITH_GLOBAL}
    inherited["ngf"] = max(1, g.net.ngf // 2**n_local)
    clashes = [
        f"{k}: {v!r} (global run: {inherited[k]!r})"
        for k, v in given.items()
        if k in inherited and v != inherited[k]
    ]
    if clashes or inherited["ngf"] * 2**n_local != g.net.ngf:
        raise ConfigError(
            f"--global {global_run}: this G2 does not fit its G1 ("
            + "; ".join(clashes or [f"G1's ngf {g.net.ngf} is not ngf x 2^{n_local}"])
            + "); leave those options out to take the global run's"
        )
    net = {**LOCAL_DEFAULTS, **inherited, **given}
    if net["num_d"] < g.net.num_d:
        raise ConfigError(
            f"--num-d {net['num_d']}: the global run's D has {g.net.num_d} "
            f"scales to load; use --num-d {g.net.num_d} or more"
        )
    return _config("local", _with_dataset(net, data_root), data_root, flags)


def joint_config(data_root: Path, run: Path, flags: Flags) -> TrainConfig:
    """train-joint: the local run's own config, every part trainable, the schedule going on."""
    record = RunDir(Path(run)).config
    if not record.is_file():
        raise CheckpointError(f"--run {run}: not a p2phd run; train it with train-local first")
    stored, _ = read_config_record(record)
    if stored.stage == "global":
        raise ConfigError(
            f"--run {run}: is a train-global run; train-joint fine-tunes a "
            "train-local run (G1 + G2)"
        )
    runtime = RunOptions(data_root=str(data_root), **flags.get("run", {}))  # this invocation's
    return dataclasses.replace(stored, stage="joint", run=runtime)
