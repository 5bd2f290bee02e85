"""The training state in a checkpoint, beside the weights: Adam's moments keyed by parameter
name (never by position), the RNG, and the hand-overs between stages (a new local run starts
from its global run's G1 and D; the joint stage adds G1 to the optimiser).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from p2phd.checkpoint import Checkpoint, load_strict
from p2phd.errors import CheckpointError
from p2phd.nets.generator import LocalEnhancer
from p2phd.training.gan import Pix2PixHD


def _names(model: Pix2PixHD) -> tuple[dict[int, str], dict[int, str]]:
    """Parameter names for the optimiser files; E's share G's optimiser as `encoder.*`."""
    g = {id(p): n for n, p in model.G.named_parameters()}
    if model.E is not None:
        g |= {id(p): f"encoder.{n}" for n, p in model.E.named_parameters()}
    return g, {id(p): n for n, p in model.D.named_parameters()}


def training_tensors(model: Pix2PixHD) -> tuple[dict[str, dict[str, Tensor]], dict[str, Any]]:
    """(tensors per checkpoint file: G, D, [E], optim with the RNG; JSON-able optimiser
    groups for state.json)."""
    g_names, d_names = _names(model)
    g_opt, g_group = optimizer_tensors(model.opt_g, g_names, "G")
    d_opt, d_group = optimizer_tensors(model.opt_d, d_names, "D")
    tensors = {
        "G": model.G.state_dict(),
        "D": model.D.state_dict(),
        "optim": {**g_opt, **d_opt, **rng_tensors()},
    }
    if model.E is not None:
        tensors["E"] = model.E.state_dict()
    for name, average in model.averages.items():
        tensors[average_file(name)] = average.average.state_dict()
    return tensors, {"G": g_group, "D": d_group}


def average_file(role: str) -> str:
    """The checkpoint file of a net's moving average: `G_ema`, `E_ema`."""
    return f"{role}_ema"


def restore_averages(model: Pix2PixHD, ckpt: Checkpoint | None) -> None:
    """The averages from the checkpoint where it has them; otherwise (a new run, a run from
    before averages, the local stage's start) they start equal to the weights."""
    for name, average in model.averages.items():
        file = average_file(name)
        if ckpt is not None and f"{file}.safetensors" in ckpt.state.files:
            load_strict(average.average, ckpt.tensors(file), f"{ckpt.path}/{file}.safetensors")
        else:
            average.reset()


def restore(model: Pix2PixHD, ckpt: Checkpoint) -> None:
    """Weights, optimiser state and RNG from a checkpoint of this run, strictly. Entering the
    joint stage from a local checkpoint, G1's parameters start with fresh Adam moments; an
    imported checkpoint has weights only, and its optimisers start fresh."""
    load_strict(model.G, ckpt.tensors("G"), f"{ckpt.path}/G.safetensors")
    load_strict(model.D, ckpt.tensors("D"), f"{ckpt.path}/D.safetensors")
    if model.E is not None:
        load_strict(model.E, ckpt.tensors("E"), f"{ckpt.path}/E.safetensors")
    groups = ckpt.state.optim
    if groups is None:  # imported: no optimiser state to restore
        return
    optim = ckpt.tensors("optim")
    g_names, d_names = _names(model)
    unfreezing = model.cfg.stage == "joint" and ckpt.state.stage == "local"
    restore_optimizer(model.opt_g, optim, groups.G, g_names, "G", allow_new=unfreezing)
    restore_optimizer(model.opt_d, optim, groups.D, d_names, "D")
    restore_rng(optim)


def start_from_global(model: Pix2PixHD, ckpt: Checkpoint) -> None:
    """Start the local stage from a global run: its G1 weights go into `global_generator`
    (strictly, all but the unused image head) and its D scales into the coarsest scales of
    this D, which see the same absolute resolutions as before."""
    assert isinstance(model.G, LocalEnhancer)
    g1 = {
        k.removeprefix("trunk."): v for k, v in ckpt.tensors("G").items() if k.startswith("trunk.")
    }
    load_strict(model.G.global_generator.trunk, g1, f"{ckpt.path}/G.safetensors (trunk)")
    if model.E is not None:
        load_strict(model.E, ckpt.tensors("E"), f"{ckpt.path}/E.safetensors")
    d = ckpt.tensors("D")
    loaded = len({k.split(".")[1] for k in d})
    if loaded > len(model.D.scales):
        raise CheckpointError(
            f"{ckpt.path}/D.safetensors has {loaded} scales but --num-d is "
            f"{len(model.D.scales)}; use --num-d {loaded} or more"
        )
    for k in range(loaded):
        prefix = f"scales.{k}."
        part = {key.removeprefix(prefix): v for key, v in d.items() if key.startswith(prefix)}
        load_strict(model.D.scales[k], part, f"{ckpt.path}/D.safetensors (scale {k})")


def optimizer_tensors(
    opt: torch.optim.Optimizer, names: dict[int, str], prefix: str
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Adam state as flat tensors keyed `<prefix>.<param name>.<slot>`, and its one parameter
    group (hyperparameters and parameter names) as JSON."""
    (group,) = opt.param_groups
    params = [names[id(p)] for p in group["params"]]
    tensors = {
        f"{prefix}.{name}.{slot}": torch.as_tensor(value)
        for p, name in zip(group["params"], params, strict=True)
        for slot, value in opt.state.get(p, {}).items()
    }
    return tensors, {**{k: v for k, v in group.items() if k != "params"}, "params": params}


def restore_optimizer(
    opt: torch.optim.Optimizer,
    tensors: dict[str, Tensor],
    group: dict[str, Any],
    names: dict[int, str],
    prefix: str,
    *,
    allow_new: bool = False,
) -> None:
    """Inverse of `optimizer_tensors`, matching parameters by name, not by position.

    With `allow_new`, parameters the checkpoint did not optimise (G1 when train-joint
    unfreezes it) start with fresh Adam moments; otherwise the sets must be equal.
    """
    (own_group,) = opt.param_groups
    own = [names[id(p)] for p in own_group["params"]]
    gone = sorted(set(group["params"]) - set(own))
    new = sorted(set(own) - set(group["params"]))
    if gone or (new and not allow_new):
        raise CheckpointError(
            f"optimizer {prefix}: the checkpoint's parameters differ from this run's "
            f"(not here: {gone[:3]}, new: {new[:3]})"
        )
    state: dict[int, dict[str, Tensor]] = {}
    for i, name in enumerate(own):
        key = f"{prefix}.{name}."
        slots = {k[len(key) :]: v for k, v in tensors.items() if k.startswith(key)}
        if slots:
            state[i] = slots
    hyper = {k: v for k, v in group.items() if k != "params"}
    opt.load_state_dict(
        {"state": state, "param_groups": [{**hyper, "params": list(range(len(own)))}]}
    )


def rng_tensors() -> dict[str, Tensor]:
    """torch's CPU and CUDA generator states (numpy and python RNGs are not used in training)."""
    out = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = s
    return out


def restore_rng(tensors: dict[str, Tensor]) -> None:
    if "rng.cpu" in tensors:
        torch.set_rng_state(tensors["rng.cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
