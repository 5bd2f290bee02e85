"""Generators: the global generator G1 and the local enhancer G2 (docs/design.md §4)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from p2phd.config import NetConfig
from p2phd.nets.blocks import (
    Checkpointed,
    Norm,
    ResnetBlock,
    check_channels,
    down_block,
    head_block,
    init_weights,
    stem_block,
    up_block,
)


class GlobalGenerator(Checkpointed):
    """G1: a 7x7 stem, `n_downsample` stride-2 convs, `n_blocks` residual blocks, as many
    transposed convs back up, and a 7x7 conv + tanh head.

    `trunk` holds the reference's Sequential modules 0 .. 3*(2*n_downsample+1)+n_blocks-1 in
    the same order (so a reference `model.<i>` key is our `trunk.<i>`); `head` holds the last
    three (pad, conv, tanh). Inside a local enhancer the head is left out (`head=False`) and
    the trunk's ngf-channel features are returned, as in the reference.

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
        head: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        layers = stem_block(in_channels, ngf, norm)
        for i in range(n_downsample):
            layers += down_block(ngf * 2**i, norm)
        layers += [ResnetBlock(ngf * 2**n_downsample, norm) for _ in range(n_blocks)]
        for i in range(n_downsample, 0, -1):
            layers += up_block(ngf * 2**i, norm)
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Sequential(*head_block(ngf, out_channels)) if head else nn.Identity()
        # Checkpoint segments: the stem, each down/up triple and each residual block.
        ends = [4 + 3 * i for i in range(n_downsample + 1)]
        ends += [ends[-1] + i for i in range(1, n_blocks + 1)]
        ends += [ends[-1] + 3 * i for i in range(1, n_downsample + 1)]
        self._segments = list(zip([0, *ends[:-1]], ends, strict=True))
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        check_channels(x, self.in_channels, "GlobalGenerator")
        if not self.checkpointing_now():
            return self.head(self.trunk(x))
        for start, end in self._segments:
            x = self.run(self.trunk[start:end], x)
        return self.run(self.head, x)


class Enhancer(Checkpointed):
    """One local enhancer level: `front` (the reference's model<n>_1) encodes the input at
    this level's resolution to half size; `back` (model<n>_2) refines the sum of that and the
    coarser level's features and upsamples them back (the finest level adds the image head).
    """

    def __init__(
        self, in_channels: int, out_channels: int, ngf: int, n_blocks: int, norm: Norm, last: bool
    ) -> None:
        super().__init__()
        self.front = nn.Sequential(*stem_block(in_channels, ngf, norm), *down_block(ngf, norm))
        back = [ResnetBlock(ngf * 2, norm) for _ in range(n_blocks)] + up_block(ngf * 2, norm)
        self.back = nn.Sequential(*back, *(head_block(ngf, out_channels) if last else []))
        self.n_blocks = n_blocks

    def forward(self, x: Tensor, coarser: Tensor) -> Tensor:
        if not self.checkpointing_now():
            return self.back(self.front(x) + coarser)  # the paper's element-wise sum fusion
        y = self.run(self.front, x) + coarser
        for i in range(self.n_blocks):
            y = self.run(self.back[i], y)
        return self.run(self.back[self.n_blocks :], y)


class LocalEnhancer(nn.Module):
    """G = {G1, G2}: G1 (`global_generator`, without its head) sees the input downsampled
    `n_local_enhancers` times; each enhancer level adds detail at twice the resolution.

    G1's width is ngf * 2^n_local_enhancers, so a 512p global generator with ngf 64 becomes
    the core of a 1024p generator with ngf 32. The input pyramid is the reference's average
    pooling of the full input (soft one-hot labels at the coarse levels). H and W must be
    multiples of 2^(n_downsample_global + n_local_enhancers).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        *,
        ngf: int = 32,
        n_downsample_global: int = 4,
        n_blocks_global: int = 9,
        n_local_enhancers: int = 1,
        n_blocks_local: int = 3,
        norm: Norm = "instance",
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.global_generator = GlobalGenerator(
            in_channels,
            out_channels,
            ngf=ngf * 2**n_local_enhancers,
            n_downsample=n_downsample_global,
            n_blocks=n_blocks_global,
            norm=norm,
            head=False,
        )
        self.enhancers = nn.ModuleList(
            Enhancer(
                in_channels,
                out_channels,
                ngf * 2 ** (n_local_enhancers - n),
                n_blocks_local,
                norm,
                last=n == n_local_enhancers,
            )
            for n in range(1, n_local_enhancers + 1)
        )
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        check_channels(x, self.in_channels, "LocalEnhancer")
        pyramid = [x]
        for _ in self.enhancers:
            pyramid.append(
                F.avg_pool2d(pyramid[-1], 3, stride=2, padding=1, count_include_pad=False)
            )
        out = self.global_generator(pyramid[-1])
        for level, enhancer in enumerate(self.enhancers, start=1):
            out = enhancer(pyramid[-1 - level], out)
        return out


def build_generator(net: NetConfig) -> GlobalGenerator | LocalEnhancer:
    """The generator a config describes: G1 alone, or G1 inside local enhancers."""
    if net.n_local_enhancers == 0:
        return GlobalGenerator(
            net.generator_in_channels,
            net.output_nc,
            ngf=net.ngf,
            n_downsample=net.n_downsample_global,
            n_blocks=net.n_blocks_global,
            norm=net.norm,
        )
    return LocalEnhancer(
        net.generator_in_channels,
        net.output_nc,
        ngf=net.ngf,
        n_downsample_global=net.n_downsample_global,
        n_blocks_global=net.n_blocks_global,
        n_local_enhancers=net.n_local_enhancers,
        n_blocks_local=net.n_blocks_local,
        norm=net.norm,
    )
