"""Losses as pure functions of tensors: the reference's, term by term (docs/design.md §4).

Discriminator outputs come as `outs[scale][layer]` (finest scale first, the patch logits last
in each scale). The GAN terms are summed over scales, feature matching is averaged over
scales, as in the reference. All terms are computed in fp32, also under autocast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from p2phd.nets.vgg import LAYER_WEIGHTS, Vgg19Features

GanMode = Literal["lsgan", "bce", "hinge"]


def _logits(outs: Sequence[Sequence[Tensor]]) -> list[Tensor]:
    return [scale[-1].float() for scale in outs]


def gan_d_loss(
    mode: GanMode, real: Sequence[Sequence[Tensor]], fake: Sequence[Sequence[Tensor]]
) -> tuple[Tensor, Tensor]:
    """(D loss on real, D loss on fake), each summed over scales. LSGAN targets 1 and 0."""
    loss_real = torch.stack([_d_term(mode, x, True) for x in _logits(real)]).sum()
    loss_fake = torch.stack([_d_term(mode, x, False) for x in _logits(fake)]).sum()
    return loss_real, loss_fake


def gan_g_loss(mode: GanMode, fake: Sequence[Sequence[Tensor]]) -> Tensor:
    """G's adversarial loss on D's view of the fake, summed over scales."""
    terms = []
    for x in _logits(fake):
        if mode == "hinge":
            terms.append(-x.mean())
        else:
            terms.append(_d_term(mode, x, True))
    return torch.stack(terms).sum()


def _d_term(mode: GanMode, x: Tensor, real: bool) -> Tensor:
    if mode == "lsgan":
        return F.mse_loss(x, torch.full_like(x, 1.0 if real else 0.0))
    if mode == "bce":
        return F.binary_cross_entropy_with_logits(x, torch.full_like(x, 1.0 if real else 0.0))
    if mode == "hinge":
        return F.relu(1.0 - x).mean() if real else F.relu(1.0 + x).mean()
    raise ValueError(f"unknown GAN mode {mode!r}")


def feature_matching_loss(
    fake: Sequence[Sequence[Tensor]], real: Sequence[Sequence[Tensor]]
) -> Tensor:
    """L1 between D's intermediate features of fake and (detached) real images.

    Weighted 1/num_D per scale and 4/(n_layers_D + 1) per layer over every layer but the
    logits, as in the reference; multiply by lambda_feat outside.
    """
    num_d = len(fake)
    terms = []
    for fake_scale, real_scale in zip(fake, real, strict=True):
        layer_weight = 4.0 / (len(fake_scale) - 1)  # n_layers_D + 1 intermediate layers
        for f, r in zip(fake_scale[:-1], real_scale[:-1], strict=True):
            terms.append(F.l1_loss(f.float(), r.detach().float()) * (layer_weight / num_d))
    return torch.stack(terms).sum()


def vgg_loss(vgg: Vgg19Features, fake: Tensor, real: Tensor) -> Tensor:
    """Weighted L1 between VGG19 relu1_1..relu5_1 features; multiply by lambda_feat outside.

    As the reference: the [-1, 1] images go in without ImageNet normalisation, and the
    weights are 1/32, 1/16, 1/8, 1/4, 1. A grey image (one channel) is seen as RGB.
    """
    if fake.shape[1] == 1:
        fake, real = fake.expand(-1, 3, -1, -1), real.expand(-1, 3, -1, -1)
    with torch.no_grad():
        real_feats = vgg(real)
    fake_feats = vgg(fake)
    terms = [
        w * F.l1_loss(f.float(), r.float())
        for w, f, r in zip(LAYER_WEIGHTS, fake_feats, real_feats, strict=True)
    ]
    return torch.stack(terms).sum()
