"""Robust PCA (principal component pursuit via tensorly) and rank-k subspaces of micromotion anchors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.editing.subspace.decomposition import (
    MicromotionError,
    decompose_anchors,
    pca_subspace,
    pcp_lambda,
    robust_pca,
)

torch.set_num_threads(1)


def planted(n1=60, n2=80, rank=3, fraction=0.05, seed=0):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((n1, rank)) @ rng.standard_normal((rank, n2)) / np.sqrt(rank)
    support = rng.random((n1, n2)) < fraction
    S0 = np.where(support, rng.choice([-1.0, 1.0], (n1, n2)) * rng.uniform(3, 10, (n1, n2)), 0.0)
    return L0, S0


def test_pcp_lambda_default():
    assert pcp_lambda((16, 512)) == pytest.approx(1 / np.sqrt(512))
    assert pcp_lambda((100, 9)) == pytest.approx(0.1)


def test_robust_pca_recovers_planted_low_rank_under_sparse_corruption():
    L0, S0 = planted()
    L, S = robust_pca(L0 + S0)
    assert np.linalg.norm(L - L0) / np.linalg.norm(L0) < 1e-4
    assert np.linalg.norm(S - S0) / np.linalg.norm(S0) < 1e-4
    assert np.linalg.matrix_rank(L, tol=1e-4 * np.linalg.norm(L, 2)) == 3
    # plain PCA at the true rank does not: the outliers leak into the subspace
    pca = pca_subspace(L0 + S0, rank=3)
    assert np.linalg.norm(pca.reconstruct(L0 + S0) - L0) / np.linalg.norm(L0) > 0.1


def test_robust_pca_is_scale_equivariant_and_checks_input():
    L0, S0 = planted(seed=1)
    L1, _ = robust_pca(L0 + S0)
    L2, _ = robust_pca(1000.0 * (L0 + S0))
    assert np.allclose(L2, 1000.0 * L1, rtol=1e-5, atol=1e-5)
    with pytest.raises(MicromotionError, match="finite matrix"):
        robust_pca(np.zeros((5,)))
    with pytest.raises(MicromotionError, match="finite matrix"):
        robust_pca(np.full((4, 4), np.nan))


def test_pca_subspace_reconstructs_points_of_an_affine_subspace():
    rng = np.random.default_rng(2)
    X = rng.standard_normal(32) + rng.standard_normal((10, 2)) @ rng.standard_normal((2, 32))
    sub = pca_subspace(X, rank=2)
    assert sub.basis.shape == (2, 32)
    assert np.allclose(sub.basis @ sub.basis.T, np.eye(2), atol=1e-10)
    assert np.allclose(sub.reconstruct(X), X, atol=1e-10)
    assert pca_subspace(X[:3], rank=4).basis.shape == (2, 32)  # rank capped at N - 1


def test_decompose_anchors_per_layer_and_errors():
    rng = np.random.default_rng(3)
    anchors = rng.standard_normal((8, 3, 40))
    dec = decompose_anchors(anchors, method="pca", rank=7)  # rank N - 1 keeps everything
    assert np.allclose(dec.reconstruction, anchors)
    assert not dec.sparse.any() and len(dec.subspaces) == 3
    dec = decompose_anchors(anchors, method="rpca", rank=4)
    assert np.allclose(dec.low_rank + dec.sparse, anchors, atol=1e-5)
    with pytest.raises(MicromotionError, match=r"anchors: expected shape \[N, num_ws, w_dim\], got \[3, 40\]"):
        decompose_anchors(anchors[0])
    with pytest.raises(MicromotionError, match="'rpca' or 'pca'"):
        decompose_anchors(anchors, method="ica")
