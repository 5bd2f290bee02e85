"""The config of one training invocation: a new run of a stage, or the run's own config.

The paper trains G1 at half resolution (global), then the local enhancer G2 around the
frozen G1 at full resolution (local), then fine-tunes both (joint). A new local run takes
G1's architecture from its global run and refuses options that contradict it.

A run folder that exists is resumed from its config.json, which is the truth: options given
again with the same value are fine; a different value of what is trained (the nets, the
losses, the data) is refused with the list; what only says how this invocation runs (device,
cadence, workers) applies to it, and the rest of that comes from the run. The schedule may
grow: more --epochs or --decay-epochs continue from the current step with the learning rate
recomputed for the current epoch. The VGG weights are known by content, so the file may move.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from p2phd.atomic import check_apart
from p2phd.checkpoint import RunDir, latest_checkpoint, read_config_record, require_checkpoint
from p2phd.config import (
    DataConfig,
    LossConfig,
    NetConfig,
    OptimConfig,
    RunOptions,
    Stage,
    TrainConfig,
    resume_conflicts,
)
from p2phd.data.manifest import read_manifest
from p2phd.downloads import cached, known
from p2phd.errors import CheckpointError, ConfigError
from p2phd.weights import sha256_file

Flags = dict[str, dict[str, Any]]

# Options of the local stage that differ from NetConfig's defaults (the reference's 1024p
# scripts: --netG local --ngf 32 --num_D 3).
LOCAL_DEFAULTS = {"n_local_enhancers": 1, "num_d": 3}
# What the local stage must share with the global run for G1 and D to load: every net field
# but the enhancers' own, G's width (G1's is ngf * 2^enhancers) and D's number of scales.
LOCAL_ONLY = ("ngf", "n_local_enhancers", "n_blocks_local", "num_d")
SHARED_WITH_GLOBAL = tuple(
    f.name for f in dataclasses.fields(NetConfig) if f.name not in LOCAL_ONLY
)
_CONTINUES = {"global": ("global",), "local": ("local",), "joint": ("local", "joint")}
_COMMAND = {"global": "train-global", "local": "train-local", "joint": "train-joint"}


def training_config(
    stage: Stage, data_root: Path, run: Path, flags: Flags, global_run: Path | None = None
) -> TrainConfig:
    """The config for `p2phd train-<stage> DATA --run RUN [options]`. A run folder without
    a checkpoint has trained nothing (its first start was refused, or stopped before the
    first save): it starts anew with these options, not bound by the ones it had."""
    check_run_folder(Path(run), data_root)
    if has_trained(Path(run)):
        return _resumed(stage, data_root, Path(run), flags)
    if stage == "joint":
        raise CheckpointError(f"--run {run}: not a p2phd run; train it with train-local first")
    if stage == "local":
        if global_run is None:
            raise ConfigError(
                f"--run {run}: a new local run needs --global GLOBAL_RUN (the "
                "train-global run holding G1)"
            )
        return _local(data_root, global_run, flags)
    return _config("global", _with_dataset(dict(flags.get("net", {})), data_root), data_root, flags)


def check_run_folder(run: Path, data_root: Path) -> None:
    """A run folder is p2phd's alone: not the data, not inside another run, and not a folder
    of other files (checkpoints, samples and log.jsonl would be written among them)."""
    check_apart(run, [("the dataset", data_root)], "--run")  # --global: the stage check's
    for parent in Path(os.path.abspath(run)).resolve().parents:
        if (parent / "config.json").is_file() and (parent / "checkpoints").is_dir():
            raise ConfigError(f"--run {run}: is inside the run {parent}; pass a folder outside it")
    if run.exists() and not run.is_dir():
        raise ConfigError(f"--run {run}: is a file; pass a folder for the run")
    if run.is_dir() and not RunDir(run).config.is_file():
        if any(not entry.name.startswith(".") for entry in run.iterdir()):
            raise ConfigError(
                f"--run {run}: holds other files and is not a p2phd run (no config.json); "
                "pass a new or empty folder"
            )


def has_trained(run: Path) -> bool:
    """Whether `run` holds a config and a checkpoint: what binds a resumed run."""
    return (run / "config.json").is_file() and latest_checkpoint(RunDir(run)) is not None


def _check_conflicts(stored: TrainConfig, cfg: TrainConfig, run: Path) -> None:
    """What is trained stays when a run continues (the schedule may grow)."""
    conflicts = resume_conflicts(stored, cfg)
    if conflicts:
        raise CheckpointError(
            f"{run} was trained with other settings ({'; '.join(conflicts)}); repeat the "
            "original options (or leave them out) to resume, or pass a new --run"
        )


def _check_stage(was: Stage, stage: Stage, run: Path) -> None:
    """The stages go global, or local then joint, never back."""
    if stage == "joint" and was == "global":
        raise ConfigError(
            f"--run {run}: is a train-global run; train-joint fine-tunes a "
            "train-local run (G1 + G2)"
        )
    if was not in _CONTINUES[stage]:
        raise CheckpointError(
            f"{run} is a {was}-stage run; continue it with p2phd {_COMMAND[was]}, or pass a "
            "new --run"
        )


def _resumed(stage: Stage, data_root: Path, run: Path, flags: Flags) -> TrainConfig:
    """The run's own config, with the options given to this invocation."""
    stored, _ = read_config_record(RunDir(run).config)
    _check_stage(stored.stage, stage, run)
    sections: dict[str, Any] = {
        name: dataclasses.replace(getattr(stored, name), **flags.get(name, {}))
        for name in ("net", "loss", "data", "optim")
    }
    per_invocation = ("max_steps", "data_root")
    inherited = {k: v for k, v in asdict(stored.run).items() if k not in per_invocation}
    runtime = RunOptions(**{**inherited, **flags.get("run", {}), "data_root": str(data_root)})
    loss, runtime = _with_vgg(sections["loss"], runtime, stored.loss.vgg_sha256)
    cfg = dataclasses.replace(stored, stage=stage, **{**sections, "loss": loss}, run=runtime)
    _check_conflicts(stored, cfg, run)
    return cfg


def _with_vgg(
    loss: LossConfig, run: RunOptions, recorded: str | None
) -> tuple[LossConfig, RunOptions]:
    """The one check of the VGG weights: given (else the cached file of `p2phd weights fetch
    vgg19`) when the loss is on, there, and the run's own (known by content: a moved file is
    fine, another is refused); their hash goes into the loss config."""
    if not loss.vgg_loss:
        return loss, run
    vgg = known("vgg19")
    if run.vgg_weights is None and (path := cached("vgg19")) is not None:
        run = dataclasses.replace(run, vgg_weights=str(path))
    if run.vgg_weights is None:
        raise ConfigError(
            f"--vgg-weights: the VGG loss needs torchvision's VGG19 ImageNet weights; "
            f"{vgg.fetch_hint()}, pass a local file, or train without the loss: --no-vgg-loss"
        )
    path = Path(run.vgg_weights)
    if not path.is_file():
        moved = " (the run's file moved?)" if recorded else ""
        raise ConfigError(
            f"--vgg-weights {path}: does not exist{moved}; pass the VGG19 weights file, "
            f"or {vgg.fetch_hint()}"
        )
    digest = sha256_file(path)
    if recorded is not None and digest != recorded:
        raise ConfigError(
            f"--vgg-weights {path}: another file than the run was trained with (sha256 "
            f"{digest[:12]}... != {recorded[:12]}...); pass the original VGG19 weights"
        )
    return dataclasses.replace(loss, vgg_sha256=digest), run


def _with_dataset(net: dict[str, Any], data_root: Path) -> dict[str, Any]:
    """`label_nc`, `instance`, the class divisor and the class names default to the prepped
    dataset's."""
    manifest = read_manifest(Path(data_root))
    dataset: dict[str, Any] = {
        "label_nc": manifest.label_nc,
        "instance": manifest.instance,
        "class_divisor": manifest.class_divisor,
    }
    if manifest.fields is not None:  # the run maps values as its data does
        dataset["fields"] = manifest.fields
        dataset["input_nc"] = manifest.fields.input.channels
        dataset["output_nc"] = manifest.fields.output.channels
    net = {**dataset, **net}
    if "class_names" not in net:  # the data's names name the data's classes
        same = net["label_nc"] == manifest.label_nc
        net["class_names"] = manifest.class_names if same else ()
    return net  # whether the data fits these nets is checked where it is read (check_fits)


def _config(stage: Stage, net: dict[str, Any], data_root: Path, flags: Flags) -> TrainConfig:
    run = RunOptions(data_root=str(data_root), **flags.get("run", {}))
    losses = flags.get("loss", {})
    if net.get("fields") is not None:  # VGG19 knows photos, not measurements: off unless asked
        losses = {"vgg_loss": False, **losses}
    loss, run = _with_vgg(LossConfig(**losses), run, None)
    return TrainConfig(
        stage=stage,
        net=NetConfig(**net),
        loss=loss,
        data=_data(flags.get("data", {}), data_root),
        optim=OptimConfig(**flags.get("optim", {})),
        run=run,
    )


def _data(given: dict[str, Any], data_root: Path) -> DataConfig:
    """The augmentation: flips off by default for measured fields (a magnetogram's sign and
    handedness are its content), and rotation for them only."""
    fields = read_manifest(Path(data_root)).kind == "field"
    if not fields and given.get("rotate"):
        raise ConfigError(
            f"--rotate: {data_root} holds no measured fields; rotation is for them only"
        )
    return DataConfig(**{"flip": not fields, **given})


def _local(data_root: Path, global_run: Path, flags: Flags) -> TrainConfig:
    """A new local run: G2 around the global run's G1, which must fit: G1's width is
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
        f"the global run has {k} {inherited[k]!r}, not {v!r}"
        for k, v in given.items()
        if k in inherited and k != "ngf" and v != inherited[k]
    ]
    if "ngf" in given and given["ngf"] * 2**n_local != g.net.ngf:
        clashes.append(
            f"the global run's G1 has ngf {g.net.ngf}, so {n_local} enhancer(s) need "
            f"--ngf {g.net.ngf // 2**n_local} ({g.net.ngf} / 2^{n_local})"
        )
    elif inherited["ngf"] * 2**n_local != g.net.ngf:
        clashes.append(f"the global run's G1 has ngf {g.net.ngf}, not a multiple of 2^{n_local}")
    if clashes:
        raise ConfigError(
            f"--global {global_run}: this G2 does not fit its G1 ({'; '.join(clashes)}); "
            "leave those options out to take the global run's"
        )
    net = {**LOCAL_DEFAULTS, **inherited, **given}
    if net["num_d"] < g.net.num_d:
        raise ConfigError(
            f"--num-d {net['num_d']}: the global run's D has {g.net.num_d} "
            f"scales to load; use --num-d {g.net.num_d} or more"
        )
    return _config("local", _with_dataset(net, data_root), data_root, flags)
