"""Networks: the reference's parameter counts, shapes, gradients."""

from __future__ import annotations

import pytest
import torch

from p2phd.config import NetConfig
from p2phd.nets.discriminator import MultiscaleDiscriminator, build_discriminator
from p2phd.nets.generator import GlobalGenerator, build_generator
from p2phd.nets.vgg import Vgg19Features, load_vgg19


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_reference_parameter_counts() -> None:
    with torch.device("meta"):  # count without allocating 730 MB
        assert n_params(GlobalGenerator(36, ngf=64, n_downsample=4, n_blocks=9)) == 182_546_755
        assert n_params(GlobalGenerator(39)) == 182_556_163
        assert n_params(GlobalGenerator(36, n_downsample=3)) == 45_696_835
        assert n_params(MultiscaleDiscriminator(39, num_d=2)) == 5_603_202
        assert n_params(MultiscaleDiscriminator(39, num_d=3)) == 8_404_803
        reference = NetConfig(label_nc=35)
        assert build_generator(reference).in_channels == 36
        assert n_params(build_discriminator(reference)) == 5_603_202


def test_generator_module_order_matches_the_reference() -> None:
    with torch.device("meta"):
        g = GlobalGenerator(36)
    assert len(g.trunk) + len(g.head) == 40  # the reference's Sequential has 40 modules
    assert type(g.trunk[1]).__name__ == "Conv2d" and g.trunk[13].out_channels == 1024
    assert type(g.trunk[25]).__name__ == "ConvTranspose2d"
    assert g.head[1].in_channels == 64 and g.head[1].out_channels == 3


@pytest.mark.parametrize("size", [(32, 64), (64, 64), (48, 80)])
def test_generator_keeps_the_size(size: tuple[int, int]) -> None:
    g = GlobalGenerator(5, ngf=4, n_downsample=4, n_blocks=1)
    y = g(torch.randn(2, 5, *size))
    assert y.shape == (2, 3, *size) and y.abs().max() <= 1


def test_generator_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match=r"expects \[N, 5, H, W\]"):
        GlobalGenerator(5, ngf=4, n_downsample=2, n_blocks=1)(torch.randn(1, 4, 16, 16))


def test_discriminator_patch_map_of_reference_size() -> None:
    d = MultiscaleDiscriminator(39, ndf=2, n_layers=3, num_d=2)
    outs = d(torch.randn(1, 39, 512, 1024))
    assert [tuple(o.shape[-2:]) for o in outs[0]] == [
        (257, 513),
        (129, 257),
        (65, 129),
        (66, 130),
        (67, 131),
    ]
    assert tuple(outs[1][-1].shape[-2:]) == (35, 67)  # the 1/2 scale


def test_discriminator_scale_naming_is_coarsest_first() -> None:
    d = MultiscaleDiscriminator(4, ndf=2, n_layers=1, num_d=3)
    with torch.no_grad():
        for i, scale in enumerate(d.scales):
            for p in scale.parameters():
                p.zero_()
            scale.layers[-1][0].bias.fill_(float(i))
    with torch.no_grad():
        outs = d(torch.randn(1, 4, 32, 32))
    # output 0 is the full resolution and uses scales[2]; output 2 is the coarsest: scales[0]
    assert [float(o[-1].mean()) for o in outs] == [2.0, 1.0, 0.0]


def test_every_parameter_gets_a_gradient() -> None:
    g = GlobalGenerator(6, ngf=4, n_downsample=2, n_blocks=2)
    d = MultiscaleDiscriminator(9, ndf=4, n_layers=2, num_d=2)
    x = torch.randn(2, 6, 32, 32)
    outs = d(torch.cat([x[:, :6], g(x)], 1))
    sum(o.mean() for scale in outs for o in scale).backward()
    for name, p in [*g.named_parameters(), *d.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all(), name


def test_vgg19_loads_torchvision_layout_and_safetensors(tmp_path) -> None:
    from safetensors.torch import save_file

    vgg = Vgg19Features()
    state = {f"features.{k}": torch.randn_like(v) for k, v in vgg.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files carry these too
    torch.save(state, tmp_path / "vgg19.pth")
    loaded = load_vgg19(tmp_path / "vgg19.pth")
    assert torch.equal(loaded.features[28].weight, state["features.28.weight"])
    save_file(
        {k.removeprefix("features."): v for k, v in state.items() if "features" in k},
        str(tmp_path / "vgg19.safetensors"),
    )
    again = load_vgg19(tmp_path / "vgg19.safetensors")
    x = torch.randn(1, 3, 32, 32)
    assert all(torch.equal(a, b) for a, b in zip(loaded(x), again(x), strict=True))
    assert [o.shape[1] for o in loaded(x)] == [64, 128, 256, 512, 512]
    assert not any(p.requires_grad for p in loaded.parameters())


def test_vgg19_rejects_other_files(tmp_path) -> None:
    from p2phd.errors import CheckpointError

    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="bad.pth: not VGG19: features.0.weight is shape"):
        load_vgg19(tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="--vgg-weights .*missing.pth: does not exist"):
        load_vgg19(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.pth: not a readable weights file"):
        load_vgg19(tmp_path / "junk.pth")
