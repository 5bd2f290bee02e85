"""A moving average of the generator's weights (and the encoder's), as StyleGAN and NVIDIA's
imaginaire keep for pix2pixHD (`model_average_config`): it removes the high-frequency noise
an under-trained GAN's single weights leave on every image, at no cost in training steps.

For the first `ema_start` steps the average copies the weights (they move too fast to be
worth averaging); from then on each step moves it by `1 - beta` towards them. The update is
one fused `_foreach_lerp_` on the device with a weight known on the host: no host sync, and
it is deterministic, so a resumed run's average is bitwise the uninterrupted one's. Only
trainable parameters are averaged: a frozen G1 (the local stage) stays equal to its average
without being touched. Buffers (BatchNorm's running statistics, with --norm batch) are
copied; InstanceNorm has none, so there is nothing to recompute.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


class WeightAverage:
    """The average of one net: a copy of it whose weights follow `update`."""

    def __init__(self, net: nn.Module, beta: float, start: int) -> None:
        self.net, self.beta, self.start = net, beta, start
        self.average = copy.deepcopy(net).requires_grad_(False).eval()
        pairs = [
            (a, p)
            for a, p in zip(self.average.parameters(), net.parameters(), strict=True)
            if p.requires_grad
        ]
        self._avg: list[Tensor] = [a for a, _ in pairs]
        self._raw: list[Tensor] = [p for _, p in pairs]

    def update(self, step: int) -> None:
        """After training step `step` (counted from 1): copy, or average the weights."""
        if not self._avg:
            return
        with torch.no_grad():
            if step <= self.start:
                torch._foreach_copy_(self._avg, self._raw)
            else:
                torch._foreach_lerp_(self._avg, self._raw, 1.0 - self.beta)
            for a, b in zip(self.average.buffers(), self.net.buffers(), strict=True):
                a.copy_(b)

    def reset(self) -> None:
        """Make the average equal to the weights (a new run, or one from before averages)."""
        self.average.load_state_dict(self.net.state_dict())
