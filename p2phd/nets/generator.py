"""The global generator G1 (REFERENCE.md §1.2)."""

from __future__ import annotations

from torch import Tensor, nn

from p2phd.config import NetConfig
from p2phd.nets.blocks import Norm, ResnetBlock, check_channels, init_weights, norm_layer


class GlobalGenerator(nn.Module):
    """G1: a 7x7 stem, `n_downsample` stride-2 convs, `n_blocks` residual blocks, as many
    transposed convs back up, and a 7x7 conv + tanh head.

    `trunk` holds the reference's Sequential modules 0 .. 3*(2*n_downsample+1)+n_blocks-1 in
    the same order (so a reference `model.<i>` key is our `trunk.<i>`); `head` holds the last
    three (pad, conv, tanh). A local enhancer uses the trunk alone, as the reference does.

    Input `[N, in_channels, H, W]` with H and W multiples of 2^n_downsample; output
    `[N, out_channels, H, W]` in [-1, 1].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        *,
        ngf: int = 64,
        n_downsample: int = 4,
        n_blocks: int = 9,
        norm: Norm = "instance",
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, kernel_size=7),
            norm_layer(norm, ngf),
            nn.ReLU(inplace=True),
        ]
        for i in range(n_downsample):
            ch = ngf * 2**i
            layers += [
                nn.Conv2d(ch, ch * 2, kernel_size=3, stride=2, padding=1),
                norm_layer(norm, ch * 2),
                nn.ReLU(inplace=True),
            ]
        bottleneck = ngf * 2**n_downsample
        layers += [ResnetBlock(bottleneck, norm) for _ in range(n_blocks)]
        for i in range(n_downsample, 0, -1):
            ch = ngf * 2**i
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                norm_layer(norm, ch // 2),
                nn.ReLU(inplace=True),
            ]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7), nn.Tanh()
        )
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        check_channels(x, self.in_channels, "GlobalGenerator")
        return self.head(self.trunk(x))


def build_generator(net: NetConfig) -> GlobalGenerator:
    """The generator a config describes."""
    return GlobalGenerator(
        net.generator_in_channels,
        net.output_nc,
        ngf=net.ngf,
        n_downsample=net.n_downsample_global,
        n_blocks=net.n_blocks_global,
        norm=net.norm,
    )
