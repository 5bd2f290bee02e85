"""PatchGAN discriminators, one per scale (docs/design.md §4)."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from p2phd.config import NetConfig
from p2phd.nets.blocks import Checkpointed, Norm, check_channels, init_weights, norm_layer


class NLayerDiscriminator(Checkpointed):
    """70x70 PatchGAN: 4x4 convs with padding 2, returning every layer's output.

    `layers[j]` is the reference's `model<j>`: a stride-2 conv + LeakyReLU (no norm), then
    n_layers-1 stride-2 conv + norm + LeakyReLU, a stride-1 one, and a stride-1 conv to one
    channel of patch logits (never a sigmoid: the losses take logits). The outputs of all
    n_layers + 2 layers are returned for feature matching; the last are the logits.
    """

    def __init__(
        self, in_channels: int, *, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance"
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        kw, pad = 4, math.ceil((4 - 1) / 2)
        layers = [
            nn.Sequential(
                nn.Conv2d(in_channels, ndf, kw, stride=2, padding=pad), nn.LeakyReLU(0.2, True)
            )
        ]
        nf = ndf
        for n in range(1, n_layers + 1):
            prev, nf = nf, min(nf * 2, 512)
            stride = 2 if n < n_layers else 1
            layers.append(
                nn.Sequential(
                    nn.Conv2d(prev, nf, kw, stride=stride, padding=pad),
                    norm_layer(norm, nf),
                    nn.LeakyReLU(0.2, True),
                )
            )
        layers.append(nn.Sequential(nn.Conv2d(nf, 1, kw, stride=1, padding=pad)))
        self.layers = nn.ModuleList(layers)
        init_weights(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        check_channels(x, self.in_channels, "NLayerDiscriminator")
        outs = []
        for layer in self.layers:
            x = self.run(layer, x)
            outs.append(x)
        return outs


class MultiscaleDiscriminator(nn.Module):
    """`num_d` PatchGANs on the input downsampled 0, 1, ... times.

    `scales[k]` sees the input downsampled num_d-1-k times: index 0 is the coarsest, as the
    reference's `scale0`. So when a 2-scale D is loaded into a 3-scale one, the pretrained
    scales keep seeing the absolute resolutions they were trained at.
    The result is ordered finest first: `out[i][j]` is layer j at downsampling level i.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        ndf: int = 64,
        n_layers: int = 3,
        num_d: int = 2,
        norm: Norm = "instance",
    ) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            NLayerDiscriminator(in_channels, ndf=ndf, n_layers=n_layers, norm=norm)
            for _ in range(num_d)
        )

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        outs = []
        num_d = len(self.scales)
        for level in range(num_d):
            outs.append(self.scales[num_d - 1 - level](x))
            if level < num_d - 1:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        return outs


def build_discriminator(net: NetConfig) -> MultiscaleDiscriminator:
    """The multi-scale discriminator a config describes."""
    return MultiscaleDiscriminator(
        net.discriminator_in_channels,
        ndf=net.ndf,
        n_layers=net.n_layers_d,
        num_d=net.num_d,
        norm=net.norm,
    )
