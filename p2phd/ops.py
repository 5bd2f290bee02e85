"""Tensor operations shared by training, feature encoding and synthesis.

G's input is built by two functions and nowhere else: `encode_label` (one-hot labels and the
boundary map: also D's condition) and `generator_input` (that, then E's feature maps);
`encode_input` is the two in one, for synthesis. Training encodes the label once for G and D
and appends E's features inside the step, so whatever training sees, synthesis sees the
same way (docs/design.md §1).

Shapes: label and instance maps are integer tensors `[N, H, W]`; images and feature maps are
float tensors `[N, C, H, W]`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def unit_image(image: Tensor) -> Tensor:
    """uint8 values 0..255 -> float in [-1, 1], the range of G's output and of real images;
    measured fields arrive as float, already in [-1, 1] (prep normalised them)."""
    if image.is_floating_point():
        return image.float()
    return image.float() / 127.5 - 1


def one_hot(label_map: Tensor, label_nc: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """`[N, H, W]` class ids in [0, label_nc) -> `[N, label_nc, H, W]` one-hot.

    Ids are range-checked when maps are read (on the CPU), not here: a check here would be a
    GPU sync on every step.
    """
    n, h, w = label_map.shape
    out = torch.zeros(n, label_nc, h, w, dtype=dtype, device=label_map.device)
    return out.scatter_(1, label_map.long().unsqueeze(1), 1.0)


def boundary_map(instance_map: Tensor) -> Tensor:
    """`[N, H, W]` ids -> `[N, 1, H, W]` bool, true where a 4-neighbour has another id.

    The reference's `get_edges`: no diagonals, both sides of a boundary are marked (2 px wide).
    Computed after any resize or crop, on the map the generator actually sees.
    """
    edge = torch.zeros_like(instance_map, dtype=torch.bool)
    horizontal = instance_map[:, :, 1:] != instance_map[:, :, :-1]
    vertical = instance_map[:, 1:, :] != instance_map[:, :-1, :]
    edge[:, :, 1:] |= horizontal
    edge[:, :, :-1] |= horizontal
    edge[:, 1:, :] |= vertical
    edge[:, :-1, :] |= vertical
    return edge.unsqueeze(1)


def segment_mean(values: Tensor, keys: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mean of the rows of `values` `[P, C]` sharing a key (`keys` `[P]`): (the distinct
    keys `[U]`, each row's segment index `[P]`, the means `[U, C]`, the sizes `[U]`).

    One sort-based `unique` and one scatter, whatever the number of segments.
    """
    unique, inverse = torch.unique(keys, return_inverse=True)
    sums = values.new_zeros(unique.numel(), values.shape[1]).index_add(0, inverse, values)
    sizes = torch.bincount(inverse, minlength=unique.numel()).to(values.dtype)
    return unique, inverse, sums / sizes[:, None], sizes


ID_SPACE = 65536  # ids are checked to fit 16 bits where maps are read (instances, classes)


def instance_mean(features: Tensor, instance_map: Tensor) -> Tensor:
    """Replace every feature vector by the mean over its instance (paper §3.4).

    `features` `[N, C, H, W]`, `instance_map` `[N, H, W]` with ids below 65536; instances are
    separate per batch element. Two scatters into a table of every possible id and one
    gather, whatever the number of instances: no sort, no data-dependent shape, so it
    compiles into the step's one graph. Sums in fp32 (under bf16 autocast too);
    differentiable with respect to `features`.
    """
    n, c, h, w = features.shape
    keys = instance_map.long() + torch.arange(n, device=features.device).view(n, 1, 1) * ID_SPACE
    keys = keys.reshape(-1)
    flat = features.permute(0, 2, 3, 1).reshape(-1, c).float()
    sums = flat.new_zeros(n * ID_SPACE, c).index_add(0, keys, flat)
    counts = flat.new_zeros(n * ID_SPACE).index_add(
        0, keys, torch.ones_like(keys, dtype=flat.dtype)
    )
    means = sums / counts.clamp_min(1)[:, None]
    return means[keys].reshape(n, h, w, c).permute(0, 3, 1, 2).to(features.dtype)


def instance_class(instance_map: Tensor, divisor: int = 1000) -> Tensor:
    """The class of each instance id: the id itself below `divisor`, else id // divisor.

    Cityscapes' convention: "stuff" pixels carry their class id, each "thing" instance the
    id class * 1000 + k.
    """
    return torch.where(instance_map < divisor, instance_map, instance_map // divisor)


def encode_label(
    label_map: Tensor,
    instance_map: Tensor | None,
    *,
    label_nc: int,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The encoded label: one-hot labels, then the boundary map (docs/design.md §4). D is
    conditioned on it; G takes it with the features appended (`generator_input`).

    `label_map`: `[N, H, W]` integer class ids, or for label_nc 0 an `[N, C, H, W]` image in
    [-1, 1] used as it is. `instance_map`: `[N, H, W]` ids, or None for runs without instance
    maps. Returns `[N, NetConfig.label_channels, H, W]`.
    """
    if label_nc == 0:
        parts = [label_map.to(dtype)]
    else:
        parts = [one_hot(label_map, label_nc, dtype)]
    if instance_map is not None:
        parts.append(boundary_map(instance_map).to(dtype))
    return torch.cat(parts, dim=1)


def generator_input(encoded_label: Tensor, feature_map: Tensor | None) -> Tensor:
    """G's input: the encoded label, then (runs with features) the `[N, feat_num, H, W]`
    feature maps in its dtype."""
    if feature_map is None:
        return encoded_label
    return torch.cat([encoded_label, feature_map.to(encoded_label.dtype)], dim=1)


def encode_input(
    label_map: Tensor,
    instance_map: Tensor | None,
    feature_map: Tensor | None = None,
    *,
    label_nc: int,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """G's input from the maps: `generator_input(encode_label(...), feature_map)`."""
    encoded = encode_label(label_map, instance_map, label_nc=label_nc, dtype=dtype)
    return generator_input(encoded, feature_map)
