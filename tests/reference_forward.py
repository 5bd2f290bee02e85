"""The reference's forward passes, rebuilt from its documented layer lists with plain torch
functional calls (no p2phd code), for the numerical parity tests of import-reference.

A key file (tests/data/reference_keys/*.txt) lists the state-dict keys with shapes, then the
leaf modules in order with their reprs. Inside a Sequential, an index missing from the list
is the reference's one shared ReLU instance (printed once); an index whose children are
`<i>.conv_block.*` is a ResnetBlock (x + block(x); docs/design.md §4).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

KEYS = Path(__file__).parent / "data" / "reference_keys"


def parse(name: str) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(key -> shape, leaf module name -> repr) of one key file."""
    shapes, leaves = {}, {}
    in_leaves = False
    for line in (KEYS / f"{name}.txt").read_text().splitlines():
        if line.startswith("# leaf modules"):
            in_leaves = True
        elif line and not line.startswith("#"):
            parts = line.split("\t")
            if in_leaves:
                leaves[parts[0]] = parts[2] if len(parts) > 2 else parts[1]
            else:
                shapes[parts[0]] = tuple(int(v) for v in re.findall(r"\d+", parts[1]))
    return shapes, leaves


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(s, generator=g) * (0.02 if len(s) > 1 else 0.1) for k, s in shapes.items()
    }


def _ints(text: str, field: str) -> tuple[int, ...] | None:
    m = re.search(field + r"=[\(\[]([\d, ]+)[\)\]]", text)
    return tuple(int(v) for v in m[1].split(",")) if m else None


def _leaf(kind: str, name: str, x: Tensor, state: dict[str, Tensor]) -> Tensor:
    if kind.startswith("ReflectionPad2d"):
        pad = tuple(int(v) for v in re.findall(r"\d+", kind.split("(", 1)[1]))
        return F.pad(x, pad, mode="reflect")
    if kind.startswith("Conv2d"):
        stride, padding = _ints(kind, "stride") or (1, 1), _ints(kind, "padding") or (0, 0)
        return F.conv2d(x, state[f"{name}.weight"], state[f"{name}.bias"], stride, padding)
    if kind.startswith("ConvTranspose2d"):
        return F.conv_transpose2d(
            x,
            state[f"{name}.weight"],
            state[f"{name}.bias"],
            _ints(kind, "stride"),
            _ints(kind, "padding"),
            _ints(kind, "output_padding"),
        )
    if kind.startswith("InstanceNorm2d"):
        return F.instance_norm(x, eps=1e-5)
    if kind.startswith("LeakyReLU"):
        return F.leaky_relu(x, 0.2)
    if kind.startswith("ReLU"):
        return F.relu(x)
    if kind.startswith("Tanh"):
        return torch.tanh(x)
    raise ValueError(f"unknown module {kind}")


def run_sequential(
    prefix: str,
    x: Tensor,
    state: dict[str, Tensor],
    leaves: dict[str, str],
    *,
    outputs: list[Tensor] | None = None,
) -> Tensor:
    """Apply the Sequential `prefix` module by module, in its index order."""
    children = {
        int(n[len(prefix) + 1 :].split(".")[0]) for n in leaves if n.startswith(prefix + ".")
    }
    for i in range(max(children) + 1):
        name = f"{prefix}.{i}"
        if name in leaves:
            x = _leaf(leaves[name], name, x, state)
        elif f"{name}.conv_block.0" in leaves:
            x = x + run_sequential(f"{name}.conv_block", x, state, leaves)
        else:
            x = F.relu(x)  # the shared ReLU instance
        if outputs is not None:
            outputs.append(x)
    return x


def downsample(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


def generator(x: Tensor, state: dict[str, Tensor], leaves: dict[str, str]) -> Tensor:
    """GlobalGenerator, or LocalEnhancer when model1_1 exists (docs/design.md §4)."""
    levels = sum(1 for n in leaves if re.fullmatch(r"model\d+_1\.0", n))
    pyramid = [x]
    for _ in range(levels):
        pyramid.append(downsample(pyramid[-1]))
    out = run_sequential("model", pyramid[-1], state, leaves)
    if levels:  # G1 without its head ends in the shared ReLU, which the listing cannot show
        out = F.relu(out)
    for n in range(1, levels + 1):
        front = run_sequential(f"model{n}_1", pyramid[levels - n], state, leaves)
        out = run_sequential(f"model{n}_2", front + out, state, leaves)
    return out


def discriminator(
    x: Tensor, state: dict[str, Tensor], leaves: dict[str, str]
) -> list[list[Tensor]]:
    """MultiscaleDiscriminator: output i (0 = full resolution) uses scale num_D-1-i."""
    scales = [re.match(r"(scale|layer)(\d+)", n) for n in leaves]  # also lists "downsample"
    num_d = len({m[2] for m in scales if m})
    inter = any(n.startswith("scale") for n in leaves)
    outs = []
    for i in range(num_d):
        k = num_d - 1 - i
        if inter:
            layers = sorted(
                {
                    int(n.split("_layer")[1].split(".")[0])
                    for n in leaves
                    if n.startswith(f"scale{k}_")
                }
            )
            feats, y = [], x
            for j in layers:
                y = run_sequential(f"scale{k}_layer{j}", y, state, leaves)
                feats.append(y)
            outs.append(feats)
        else:
            outs.append([run_sequential(f"layer{k}", x, state, leaves)])
        x = downsample(x)
    return outs


def encoder(
    image: Tensor, inst: Tensor, state: dict[str, Tensor], leaves: dict[str, str]
) -> Tensor:
    """Encoder, then the reference's per-instance, per-channel averaging loop."""
    out = run_sequential("model", image, state, leaves)
    pooled = out.clone()
    for b in range(out.shape[0]):
        for i in inst[b].unique():
            mask = inst[b] == i
            for c in range(out.shape[1]):
                pooled[b, c][mask] = out[b, c][mask].mean()
    return pooled
