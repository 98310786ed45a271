"""Fréchet distance and k-NN precision / recall against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.errors import ShapeError
from facegen.metrics.distribution import frechet_distance, knn_radii, precision_recall, wasserstein_per_dim


def test_frechet_distance_of_known_gaussians():
    """Diagonal covariances: FD = ||mu_a - mu_b||^2 + sum (sqrt(s_a) - sqrt(s_b))^2, computed by hand."""
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, size=(20000, 3)) * np.array([1.0, 2.0, 3.0])
    b = rng.normal(0.5, 1.0, size=(20000, 3)) * np.array([1.0, 1.0, 1.0]) + np.array([0.5, 0.0, 0.0])
    mu_a, mu_b = a.mean(0), b.mean(0)
    sd_a, sd_b = a.std(0, ddof=1), b.std(0, ddof=1)
    by_hand = ((mu_a - mu_b) ** 2).sum() + ((sd_a - sd_b) ** 2).sum()
    assert frechet_distance(a, b) == pytest.approx(by_hand, rel=2e-2)  # off-diagonal sample covariances ~ 1e-2
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, a + np.array([3.0, 0.0, 4.0])) == pytest.approx(25.0, rel=1e-9)


def test_knn_radii_and_precision_recall_by_hand():
    real = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    assert knn_radii(real, k=1).tolist() == [1.0, 1.0, 2.0, 7.0]
    fake = torch.tensor([[0.5], [20.0], [2.5]])
    # real balls (k=1): [0 +- 1], [1 +- 1], [3 +- 2], [10 +- 7] -> 0.5 and 2.5 inside, 20 outside: precision 2/3
    # fake balls: radii 2 (0.5->2.5), 17.5 (20->2.5), 2 (2.5->0.5): 0, 1, 3 in [0.5 +- 2] or [2.5 +- 2]; 10 in [20 +- 17.5]
    assert precision_recall(real, fake, k=1) == pytest.approx((2 / 3, 1.0))


def test_identical_distributions_score_high_and_a_collapse_loses_recall():
    rng = np.random.default_rng(1)
    real, same = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    precision, recall = precision_recall(real, same)
    assert precision > 0.7 and recall > 0.7
    collapsed = rng.normal(scale=0.1, size=(2000, 8))
    precision, recall = precision_recall(real, collapsed)
    assert precision > 0.9 and recall < 0.2


def test_wasserstein_per_dim_and_shape_errors():
    a = np.stack([np.zeros(100), np.arange(100.0)], 1)
    assert wasserstein_per_dim(a, a + np.array([2.0, 0.0])) == pytest.approx([2.0, 0.0])
    with pytest.raises(ShapeError, match=r"features_b: expected shape \[5, 3\], got \[5, 4\]"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ShapeError, match="k=3 needs more than k samples"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))
