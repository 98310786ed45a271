"""Mesh metrics on constructed cases with hand-computed values."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from facegen.errors import MeshFormatError
from facegen.metrics import (
    avd,
    draw_triplets,
    error_stats,
    identity_decomposition_error,
    per_vertex_error,
    per_vertex_std,
)


def test_avd_hand_computed_numpy_and_torch():
    x = np.zeros((2, 3, 3))
    y = np.zeros((2, 3, 3))
    y[0, :, 0] = [3.0, 0.0, 0.0]  # distances 3, 0, 0 -> 1
    y[1, 0] = [3.0, 4.0, 0.0]  # distances 5, 0, 0 ...
    y[1, 1] = [0.0, 0.0, 1.0]  # ... 1 -> (5 + 1 + 0) / 3 = 2
    np.testing.assert_allclose(avd(x, y), [1.0, 2.0])
    np.testing.assert_allclose(per_vertex_error(x, y)[1], [5.0, 1.0, 0.0])
    result = avd(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    assert isinstance(result, torch.Tensor) and result.shape == (2,)
    assert torch.allclose(result, torch.tensor([1.0, 2.0]))
    assert avd(x[0], y[0]).shape == ()  # a single mesh gives a scalar
    with pytest.raises(MeshFormatError, match=r"y: expected shape \[2, 3, 3\], got \[2, 2, 3\]"):
        avd(x, y[:, :2])


def test_error_stats_hand_computed():
    stats = error_stats(torch.tensor([1.0, 2.0, 3.0, 10.0]))
    assert stats["mean"] == pytest.approx(4.0)
    assert stats["median"] == pytest.approx(2.5)
    assert stats["std"] == pytest.approx(np.sqrt((9 + 4 + 1 + 36) / 4))
    with pytest.raises(ValueError, match="empty"):
        error_stats([])


def test_identity_decomposition_error_hand_computed():
    # Class 0: two outputs differing by 2 mm along x at every vertex -> spread 1 mm at each vertex.
    base = np.random.default_rng(0).normal(size=(4, 3))
    class0 = np.stack([base, base + [2.0, 0, 0]])
    # Class 1: three outputs; vertex 0 at x = 0, 0, 3 (mean 1, squared offsets 1, 1, 4 -> sqrt(2)),
    # other vertices identical -> sigma = sqrt(2) / 4.
    class1 = np.zeros((3, 4, 3))
    class1[2, 0, 0] = 3.0
    np.testing.assert_allclose(per_vertex_std(class0), np.ones(4))
    np.testing.assert_allclose(per_vertex_std(class1), [np.sqrt(2), 0, 0, 0])
    expected = (1.0 + np.sqrt(2) / 4) / 2
    assert identity_decomposition_error([class0, class1]) == pytest.approx(expected)
    assert identity_decomposition_error([torch.tensor(class0), torch.tensor(class1)]) == pytest.approx(expected)
    assert identity_decomposition_error([np.stack([base] * 5)]) == 0.0  # identical outputs: perfect


def test_draw_triplets_only_where_all_four_meshes_exist():
    # (identity, expression) pairs present; neutral = 0.
    present = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0), (2, 2), (3, 1), (3, 2)]  # 3 has no neutral
    identity = np.array([c for c, _ in present])
    expression = np.array([s for _, s in present])
    triplets = draw_triplets(identity, expression, n=100, seed=0)
    valid = {(0, 1, 1), (1, 0, 1), (0, 2, 2), (2, 0, 2)}
    assert set(triplets) == valid and len(triplets) == 4  # all of them, each once
    for c, c_prime, s in draw_triplets(identity, expression, n=3, seed=1):
        assert c != c_prime and s != 0 and (c, c_prime, s) in valid


def test_draw_triplets_is_seeded_and_uniform():
    identity = np.repeat(np.arange(5), 3)
    expression = np.tile(np.arange(3), 5)
    all_triplets = {(c, d, s) for c, d in itertools.permutations(range(5), 2) for s in (1, 2)}
    first = draw_triplets(identity, expression, n=10, seed=7)
    assert first == draw_triplets(torch.as_tensor(identity), torch.as_tensor(expression), n=10, seed=7)
    assert first != draw_triplets(identity, expression, n=10, seed=8)
    assert len(set(first)) == 10 and set(first) <= all_triplets
    assert set(draw_triplets(identity, expression, n=1000, seed=0)) == all_triplets
    counts = np.zeros(5)
    for seed in range(200):
        for c, _, _ in draw_triplets(identity, expression, n=4, seed=seed):
            counts[c] += 1
    assert counts.min() > 0.7 * counts.mean()  # every class is drawn about equally often
    assert draw_triplets(np.array([0, 0]), np.array([0, 1]), n=5, seed=0) == []  # one class: none
