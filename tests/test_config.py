"""Config: frozen, validated, JSON round-trip, readable diffs."""

from __future__ import annotations

import dataclasses

import pytest

from p2phd.config import NetConfig, OptimConfig, TrainConfig, diff
from p2phd.errors import ConfigError


def test_json_round_trip_and_frozen() -> None:
    cfg = TrainConfig(net=NetConfig(label_nc=8, ngf=16), optim=OptimConfig(lr=1e-3))
    again = TrainConfig.from_json(cfg.to_json())
    assert again == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.net.ngf = 3  # type: ignore[misc]


def test_unknown_keys_and_wrong_types_are_refused() -> None:
    data = TrainConfig().to_dict()
    data["net"]["ngf"] = "wide"
    with pytest.raises(ConfigError, match="config.net.ngf: expected int"):
        TrainConfig.from_dict(data)
    data = TrainConfig().to_dict()
    data["net"]["bogus"] = 1
    with pytest.raises(ConfigError, match="unknown key"):
        TrainConfig.from_dict(data)
    data = TrainConfig().to_dict()
    data["loss"]["gan_mode"] = "wgan"
    with pytest.raises(ConfigError, match="gan_mode"):
        TrainConfig.from_dict(data)


def test_validation_names_the_option() -> None:
    with pytest.raises(ConfigError, match="--ngf"):
        NetConfig(ngf=0)
    with pytest.raises(ConfigError, match="--no-instance"):
        NetConfig(label_nc=0, instance=True)
    with pytest.raises(ConfigError, match="--crop-size: 100 is not a multiple of 16"):
        TrainConfig(data=dataclasses.replace(TrainConfig().data, crop_size=100))


def test_reference_channel_counts() -> None:
    net = NetConfig(label_nc=35)
    assert (net.generator_in_channels, net.discriminator_in_channels) == (36, 39)
    assert NetConfig(label_nc=0, instance=False).generator_in_channels == 3


def test_lr_schedule_matches_the_reference_decrement() -> None:
    opt = OptimConfig(lr=2e-4, epochs=100, decay_epochs=100)
    # the reference subtracts lr/100 after every epoch > 100 (1-based): epoch 101 at full lr
    assert opt.lr_at(0) == opt.lr_at(100) == 2e-4
    assert opt.lr_at(101) == pytest.approx(2e-4 * 0.99)
    assert opt.lr_at(199) == pytest.approx(2e-4 / 100)
    assert OptimConfig(epochs=3, decay_epochs=0).lr_at(10) == 2e-4


def test_diff_lists_changed_fields() -> None:
    a = TrainConfig(net=NetConfig(label_nc=8)).fixed_part()
    b = TrainConfig(net=NetConfig(label_nc=8, ngf=32)).fixed_part()
    assert diff(a, b) == ["net.ngf: 64 != 32"]
