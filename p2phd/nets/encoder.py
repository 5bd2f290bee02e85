"""The instance-wise feature encoder E (paper §3.4; docs/design.md §4)."""

from __future__ import annotations

from torch import Tensor, nn

from p2phd.config import NetConfig
from p2phd.nets.blocks import (
    Norm,
    check_channels,
    down_block,
    head_block,
    init_weights,
    stem_block,
    up_block,
)
from p2phd.ops import instance_mean


class FeatureEncoder(nn.Module):
    """E: an encoder-decoder (no residual blocks, no skips) from a photo to `feat_num`
    channels in [-1, 1], averaged inside every instance of a pooling map.

    `layers` holds the reference's Sequential modules in order (its `model.<i>` is our
    `layers.<i>`). Input `[N, in_channels, H, W]` and a pooling map `[N, H, W]` (instance
    ids, or class ids for label features); output `[N, feat_num, H, W]`, constant inside
    each region. H and W must be multiples of 2^n_downsample.
    """

    def __init__(
        self,
        in_channels: int = 3,
        feat_num: int = 3,
        *,
        nef: int = 16,
        n_downsample: int = 4,
        norm: Norm = "instance",
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        layers = stem_block(in_channels, nef, norm)
        for i in range(n_downsample):
            layers += down_block(nef * 2**i, norm)
        for i in range(n_downsample, 0, -1):
            layers += up_block(nef * 2**i, norm)
        layers += head_block(nef, feat_num)
        self.layers = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, image: Tensor, pool_map: Tensor) -> Tensor:
        check_channels(image, self.in_channels, "FeatureEncoder")
        return instance_mean(self.layers(image), pool_map)


def build_encoder(net: NetConfig) -> FeatureEncoder:
    """The encoder a config describes (only for runs with features)."""
    return FeatureEncoder(
        net.output_nc, net.feat_num, nef=net.nef, n_downsample=net.n_downsample_e, norm=net.norm
    )
