"""Building blocks shared by the generator, the discriminator and the encoder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

Norm = Literal["instance", "batch"]


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """InstanceNorm without parameters (the reference default) or BatchNorm with them."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    raise ValueError(f"unknown norm {norm!r}; use 'instance' or 'batch'")


def stem_block(in_channels: int, channels: int, norm: Norm) -> list[nn.Module]:
    """Reflection pad 3, 7x7 conv, norm, ReLU: the first layers of G1, an enhancer and E."""
    return [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_channels, channels, kernel_size=7),
        norm_layer(norm, channels),
        nn.ReLU(inplace=True),
    ]


def head_block(channels: int, out_channels: int) -> list[nn.Module]:
    """Reflection pad 3, 7x7 conv to the output channels, tanh: their last layers."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(channels, out_channels, kernel_size=7), nn.Tanh()]


def down_block(channels: int, norm: Norm) -> list[nn.Module]:
    """3x3 stride-2 conv doubling the channels, norm, ReLU (G1, the enhancers, E)."""
    return [
        nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1),
        norm_layer(norm, channels * 2),
        nn.ReLU(inplace=True),
    ]


def up_block(channels: int, norm: Norm) -> list[nn.Module]:
    """Transposed 3x3 stride-2 conv halving the channels, norm, ReLU."""
    return [
        nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1),
        norm_layer(norm, channels // 2),
        nn.ReLU(inplace=True),
    ]


class ResnetBlock(nn.Module):
    """x + [pad, conv3x3, norm, ReLU, pad, conv3x3, norm](x); no activation after the sum.

    The reference's dropout option is never switched on, so it is left out.
    """

    def __init__(self, channels: int, norm: Norm = "instance") -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, kernel_size=3),
            norm_layer(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


def init_weights(module: nn.Module) -> None:
    """The reference's `weights_init`: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02).

    Conv biases keep PyTorch's default initialisation, as in the reference.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def check_channels(x: Tensor, channels: int, net: str) -> None:
    """Fail at the net's entry with the expected and actual shapes, not deep inside a conv."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{net} expects [N, {channels}, H, W], got {list(x.shape)}")


class Checkpointed(nn.Module):
    """A module whose segments can recompute their activations in the backward pass.

    With `activation_checkpointing` on (and gradients enabled), `run` keeps only a segment's
    input and recomputes the rest when the gradient is needed: less memory for more compute
    (the memory option of train-local at 2048x1024 and beyond).
    """

    activation_checkpointing = False

    def checkpointing_now(self) -> bool:
        return self.activation_checkpointing and torch.is_grad_enabled()

    def run(self, segment: Callable[..., Tensor], *args: Tensor) -> Tensor:
        if self.checkpointing_now():
            return checkpoint(segment, *args, use_reentrant=False)
        return segment(*args)


def set_activation_checkpointing(module: nn.Module, enabled: bool) -> None:
    """Switch activation checkpointing on or off in every `Checkpointed` part of `module`."""
    for m in module.modules():
        if isinstance(m, Checkpointed):
            m.activation_checkpointing = enabled
