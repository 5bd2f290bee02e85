"""Losses: the reference's formulas and weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from p2phd import losses
from p2phd.nets.vgg import Vgg19Features


def outs(*values: float, layers: int = 3) -> list[list[torch.Tensor]]:
    return [[torch.full((1, 2, 4, 4), v) for _ in range(layers)] for v in values]


def test_lsgan_targets_and_sum_over_scales() -> None:
    real, fake = outs(1.0, 0.5), outs(0.0, 0.25)
    d_real, d_fake = losses.gan_d_loss("lsgan", real, fake)
    assert torch.isclose(d_real, torch.tensor(0.0 + 0.25))  # (1-1)^2 + (0.5-1)^2
    assert torch.isclose(d_fake, torch.tensor(0.0 + 0.0625))
    assert torch.isclose(losses.gan_g_loss("lsgan", fake), torch.tensor(1.0 + 0.5625))


def test_bce_and_hinge() -> None:
    x = outs(0.3)
    d_real, d_fake = losses.gan_d_loss("bce", x, x)
    assert torch.isclose(d_real, F.softplus(torch.tensor(-0.3)))
    assert torch.isclose(d_fake, F.softplus(torch.tensor(0.3)))
    d_real, d_fake = losses.gan_d_loss("hinge", outs(0.5), outs(-2.0))
    assert torch.isclose(d_real, torch.tensor(0.5)) and d_fake == 0
    assert torch.isclose(losses.gan_g_loss("hinge", outs(0.5)), torch.tensor(-0.5))


def test_feature_matching_weights() -> None:
    # 2 scales x (3 intermediate layers + logits): each term weighted (4/3) * (1/2)
    fake = [[torch.zeros(1, 1, 2, 2)] * 3 + [torch.full((1, 1, 1, 1), 9.0)] for _ in range(2)]
    real = [[torch.ones(1, 1, 2, 2)] * 3 + [torch.zeros(1, 1, 1, 1)] for _ in range(2)]
    got = losses.feature_matching_loss(fake, real)
    assert torch.isclose(got, torch.tensor(2 * 3 * (4 / 3) * 0.5))  # logits are left out


def test_vgg_loss_layer_weights_and_no_grad_to_real() -> None:
    vgg = Vgg19Features()
    fake = torch.rand(1, 3, 32, 32, requires_grad=True)
    real = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss = losses.vgg_loss(vgg, fake, real)
    f, r = vgg(fake), vgg(real)
    expected = sum(
        w * F.l1_loss(a, b) for w, a, b in zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1), f, r, strict=True)
    )
    assert torch.isclose(loss, expected)
    loss.backward()
    assert fake.grad is not None and real.grad is None
    assert losses.vgg_loss(vgg, fake, fake) == 0
