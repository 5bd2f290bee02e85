"""VGG19 feature stack for the perceptual loss, loaded from a local weights file.

Our own layer definition, index-compatible with torchvision's `vgg19().features`, so its
ImageNet weights file (vgg19-dcbb9e9d.pth) loads without torchvision and without a download.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from p2phd.errors import CheckpointError
from p2phd.weights import read_state_dict

# torchvision's configuration "E" up to relu5_1 (feature index 29).
_LAYOUT: list[int | str] = [
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
]
# The reference's slices end after relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1.
SLICE_ENDS = (2, 7, 12, 21, 30)
LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


class Vgg19Features(nn.Module):
    """Frozen VGG19 returning the relu1_1 .. relu5_1 activations of an `[N, 3, H, W]` image."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _LAYOUT:
            if isinstance(item, str):  # "M"
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        start = 0
        for end in SLICE_ENDS:
            for i in range(start, end):
                x = self.features[i](x)
            outs.append(x)
            start = end
        return outs

    def train(self, mode: bool = True) -> Vgg19Features:
        return super().train(False)  # always frozen; no BatchNorm or dropout either way


def load_vgg19(path: str | Path) -> Vgg19Features:
    """Build a `Vgg19Features` from torchvision's vgg19 weights (.pth) or a .safetensors copy.

    Keys may be torchvision's `features.<i>.weight` or plain `<i>.weight`; classifier weights
    are ignored. Every conv up to relu5_1 must be present with the right shape.
    """
    state = read_state_dict(Path(path), "--vgg-weights")
    vgg = Vgg19Features()
    wanted = vgg.features.state_dict()
    picked: dict[str, Tensor] = {}
    for key, expected in wanted.items():
        value = state.get(f"features.{key}", state.get(key))
        if not isinstance(value, Tensor) or value.shape != expected.shape:
            got = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else "missing"
            raise CheckpointError(
                f"--vgg-weights {path}: not VGG19: features.{key} is {got}, "
                f"expected {tuple(expected.shape)}"
            )
        picked[key] = value.float()
    vgg.features.load_state_dict(picked)
    return vgg
