"""ops: one-hot, boundary maps, instance pooling and the generator input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from p2phd.ops import boundary_map, encode_input, instance_mean, one_hot


def naive_boundary(ids: np.ndarray) -> np.ndarray:
    h, w = ids.shape
    out = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and ids[yy, xx] != ids[y, x]:
                    out[y, x] = True
    return out


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.int64, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.integers(0, 3))
)
def test_boundary_map_equals_naive_four_neighbour_rule(ids: np.ndarray) -> None:
    got = boundary_map(torch.from_numpy(ids)[None])[0, 0].numpy()
    np.testing.assert_array_equal(got, naive_boundary(ids))


def test_boundary_map_marks_both_sides_and_no_diagonals() -> None:
    ids = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3]]])
    expected = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(boundary_map(ids)[0, 0], expected)
    diagonal = torch.tensor([[[5, 0], [0, 5]]])
    assert boundary_map(diagonal).all()  # every pixel has a 4-neighbour with another id


def slow_instance_mean(features: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(features)
    for b in range(features.shape[0]):
        for i in inst[b].unique():
            mask = inst[b] == i
            for c in range(features.shape[1]):
                out[b, c][mask] = features[b, c][mask].mean()
    return out


@pytest.mark.parametrize("seed", range(5))
def test_instance_mean_equals_slow_loop(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    inst = torch.randint(0, 6, (3, 17, 23), generator=g) * 1000 + torch.randint(
        0, 3, (3, 17, 23), generator=g
    )
    inst[1] = 33001  # one element with a single 16-bit id
    feats = torch.randn(3, 4, 17, 23, generator=g, dtype=torch.float64)
    torch.testing.assert_close(instance_mean(feats, inst), slow_instance_mean(feats, inst))


def test_instance_mean_keeps_batch_elements_apart_and_passes_gradients() -> None:
    inst = torch.zeros(2, 4, 4, dtype=torch.int64)  # the same id in both elements
    feats = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)]).requires_grad_()
    out = instance_mean(feats, inst)
    assert out[0].eq(0).all() and out[1].eq(1).all()
    out.sum().backward()
    assert feats.grad is not None and torch.allclose(feats.grad, torch.ones_like(feats))


def test_one_hot_and_encode_input_layout() -> None:
    label = torch.tensor([[[0, 2], [1, 2]]])
    inst = torch.tensor([[[7, 7], [7, 8]]])
    oh = one_hot(label, 3)
    assert oh.shape == (1, 3, 2, 2) and oh.sum(1).eq(1).all() and oh[0, 2, 0, 1] == 1
    x = encode_input(label, inst, label_nc=3)
    assert x.shape == (1, 4, 2, 2)
    assert torch.equal(x[:, :3], oh)  # one-hot first, then the boundary map, as the reference
    assert torch.equal(x[0, 3], torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
    assert encode_input(label, None, label_nc=3).shape == (1, 3, 2, 2)
    rgb = torch.rand(1, 3, 2, 2) * 2 - 1
    assert torch.equal(encode_input(rgb, None, label_nc=0), rgb)
