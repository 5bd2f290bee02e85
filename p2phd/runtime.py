"""Device, precision and seeding: resolved once, passed everywhere as arguments."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from p2phd.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` is CUDA when present, else the CPU; an unavailable CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name}: use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name}: p2phd runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available here; use --device cpu")
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` is bf16 autocast on CUDA (the measured-fastest correct setting), fp32 on CPU."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"--precision {precision}: use auto, fp32 or bf16")
    return precision


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """bf16 autocast for the forward passes, or a disabled one for fp32 (a real
    `torch.autocast`, which torch.compile traces into the graph)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch: network initialisation is then reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def use_fast_kernels(device: torch.device) -> None:
    """On CUDA, let cuDNN pick the fastest convolution algorithms for the shapes it meets
    (the shapes of a run are fixed, so the search is paid once)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


@dataclass(frozen=True, slots=True)
class DeviceOptions:
    """Where and how a command that reads a run computes: the --device, --precision and
    --compile every such command takes."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on the CPU) | fp32 | bf16
    compile: bool = False  # torch.compile the nets as one graph each

    def resolve(self) -> tuple[torch.device, str]:
        """The device (its fast kernels on) and the precision: checked once, used everywhere."""
        device = resolve_device(self.device)
        use_fast_kernels(device)
        return device, resolve_precision(self.precision, device)
