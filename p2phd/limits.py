"""The limits of what p2phd takes, decided once. Every option and size is checked against
these before work starts, and a refusal names the limit and a value that fits: an option far
past any real use otherwise asked numpy or torch for terabytes (a `MemoryError` traceback),
or ran for minutes with no output.

Memory is an estimate from the nets' widths, calibrated on the CPU (fp32, G1 at ngf 64):
synthesis keeps about five activations of the widest full-size layer alive, training about
sixteen of G's alone (D and VGG add more). A size whose estimate passes the device's memory
is refused; one past half of it is said in a note. Standard library only (config imports it).
"""

from __future__ import annotations

import os
from typing import Protocol

from p2phd.errors import ConfigError


class NetConfig(Protocol):
    """What the estimate reads of `p2phd.config.NetConfig` (which imports this module)."""

    @property
    def label_channels(self) -> int: ...

    @property
    def use_features(self) -> bool: ...

    @property
    def feat_num(self) -> int: ...

    @property
    def ngf(self) -> int: ...

    @property
    def nef(self) -> int: ...

    @property
    def n_local_enhancers(self) -> int: ...

    @property
    def n_downsample_global(self) -> int: ...

    @property
    def n_blocks_global(self) -> int: ...

    @property
    def n_blocks_local(self) -> int: ...

    @property
    def num_d(self) -> int: ...


SEEDS = 2**32  # numpy's, torch's and scikit-learn's seeds all take [0, 2^32)
MAX_SIDE = 16384  # pixels: 4x Cityscapes' 2048x1024 and a 4096x4096 field fit with room
MAX_LABEL_NC = 4096  # classes: ADE20K's full 3688 fit; the one-hot input is label_nc wide
MAX_VARIATIONS = 1000  # synthesize --variations: images per label map
MAX_PORT = 65535
MAX_WORKERS = 256  # reader threads or loader processes: past the cores, they only cost memory
MAX_TOY_ITEMS = 100_000  # toy scenes or fields per split (Cityscapes has 2975 to train)
# the nets' shapes, each well past the paper's (9 and 3 blocks, 1 or 2 enhancers, ngf 64):
MAX_BLOCKS = 64  # residual blocks of G1 (--n-blocks-global) or of each enhancer
MAX_LOCAL_ENHANCERS = 4  # each doubles the side: G1 at 1/16 of the output's
MAX_DOWNSAMPLE = 8  # stride-2 convolutions of G1 and of E
MAX_WIDTH = 1024  # --ngf, --ndf, --nef: a layer's channels before doubling
MAX_CHANNELS = 4096  # --feat-num, and the channels of measured fields
MAX_LAYERS_D = 8  # --n-layers-d
MAX_NUM_D = 16  # --num-d: a 16384 side holds 15 (check_discriminator_scales bounds it by size)
SYNTH_FLOATS_PER_CHANNEL = 5  # measured: ~1.25 KB per pixel for G1 at ngf 64, fp32
TRAIN_FLOATS_PER_CHANNEL = 16  # measured: ~3.9 KB per pixel for G1's forward and backward


def check_seed(seed: int, option: str = "--seed") -> int:
    """A seed every library takes: numpy and scikit-learn refuse negatives and 2^32 on."""
    if not 0 <= seed < SEEDS:
        raise ConfigError(f"{option} {seed}: a seed lies in 0..{SEEDS - 1}; pass e.g. 0")
    return seed


def check_side(value: int | None, option: str, low: int = 1) -> None:
    """A width (or height) option in `low`..MAX_SIDE; None (not given) passes."""
    if value is not None and not low <= value <= MAX_SIDE:
        fit = min(max(value, low), MAX_SIDE)
        raise ConfigError(f"{option} {value}: sides lie in {low}..{MAX_SIDE}; pass e.g. {fit}")


def check_range(value: int, option: str, low: int, high: int) -> None:
    """An integer option in `low`..`high`, named with the nearest value that fits."""
    if not low <= value <= high:
        fit = min(max(value, low), high)
        raise ConfigError(f"{option} {value}: lies in {low}..{high}; pass e.g. {fit}")


def check_discriminator_scales(net: NetConfig, width: int, height: int) -> None:
    """D's coarsest scale (the sample halved num_d - 1 times) must keep a side of 2 pixels:
    at 1x1 its InstanceNorm has nothing to normalise (torch's ValueError, mid-step)."""
    fits, side = 1, max(width, height)
    while -(-side // 2) >= 2:  # D's avg-pool halves, rounding up: one more scale fits
        fits, side = fits + 1, -(-side // 2)
    if net.num_d > fits:
        raise ConfigError(
            f"--num-d {net.num_d}: a {width}x{height} training sample holds {fits} "
            f"discriminator scales; pass --num-d {fits} or less, or train at a larger size"
        )


def synthesis_bytes(net: NetConfig, width: int, height: int, batch: int = 1) -> int:
    """Estimated peak memory of G rendering `batch` maps of `width` x `height` (fp32)."""
    return _bytes(net, width, height, batch, SYNTH_FLOATS_PER_CHANNEL, training=False)


def training_bytes(net: NetConfig, width: int, height: int, batch: int = 1) -> int:
    """Estimated memory of G's forward and backward alone at this size, with its weights and
    optimizer state: a lower bound of a training step (D and the VGG loss come on top)."""
    return _bytes(net, width, height, batch, TRAIN_FLOATS_PER_CHANNEL, training=True)


def generator_parameters(net: NetConfig) -> int:
    """G's 3x3 convolutions, where nearly all of its weights are (within 1% of the exact
    count at the paper's shapes): they grow with the square of the width, so a wide or deep
    net passes the device's memory before any image does."""
    width = net.ngf * 2**net.n_local_enhancers  # G1's
    convs = sum(2 * (width * 2**i) * (width * 2 ** (i + 1)) for i in range(net.n_downsample_global))
    convs += 2 * net.n_blocks_global * (width * 2**net.n_downsample_global) ** 2
    for k in range(net.n_local_enhancers):  # each finer enhancer: half the width
        half = net.ngf * 2 ** (net.n_local_enhancers - 1 - k)
        convs += 2 * half * 2 * half + 2 * net.n_blocks_local * (2 * half) ** 2
    return 9 * convs


def memory_fix(net: NetConfig, needed: int, training: bool, size_fix: str) -> str:
    """What to change when an estimate does not fit: the size, or the net where its weights
    (with their optimizer state when training) are most of it."""
    if _weight_bytes(net, training) > needed / 2:
        return "the net is the most of it: pass a smaller --ngf, fewer downsamplings or blocks"
    return size_fix


def _weight_bytes(net: NetConfig, training: bool) -> int:
    """G's weights in fp32; in training, their gradients and Adam's two moments beside them."""
    return 4 * (4 if training else 1) * generator_parameters(net)


def _bytes(
    net: NetConfig, width: int, height: int, batch: int, per_channel: int, training: bool
) -> int:
    """Activations per pixel, plus G's weights (`_weight_bytes`)."""
    area = width * height * batch
    channels = net.label_channels + net.feat_num * net.use_features
    # each finer generator doubles the side and halves the width: G1 at 1/4^n of the area
    widest = sum(net.ngf * 2**k / 4**k for k in range(net.n_local_enhancers + 1))
    if net.use_features:
        widest += net.nef
    return int(4 * area * (channels + per_channel * widest)) + _weight_bytes(net, training)


def device_memory(device: str) -> int | None:
    """Total memory of a torch device (`cpu`, `cuda:0`), or None when it cannot be told."""
    if device.startswith("cuda"):
        import torch  # only where a CUDA device was resolved, so torch is loaded

        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(needed: int, device: str, what: str, fix: str) -> str | None:
    """Refuse work whose estimate passes the device's memory; a note (returned) when it
    takes more than half of it, None otherwise."""
    total = device_memory(device)
    if total is None:
        return None
    if needed > total:
        raise ConfigError(
            f"{what}: needs about {_size(needed)}, more than the {_size(total)} of {device}; {fix}"
        )
    if needed > total / 2:
        return f"{what} needs about {_size(needed)} of the {_size(total)} of {device}"
    return None


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"
