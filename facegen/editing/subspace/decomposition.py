"""Robust space decomposition of micromotion anchors (Wu et al., CPAL 2024, sec. 3.3 step 2).

Anchors of one identity, ``[N, num_ws, w_dim]`` W+ latents, are treated per W+ layer as a data matrix
``X_l [N, w_dim]`` (one anchor per row). Robust PCA by principal component pursuit (Candes, Li, Ma,
Wright, JACM 2011, eq. 1.1)::

    min ||L||_* + lam * ||S||_1   subject to   X = L + S,      lam = 1 / sqrt(max(n1, n2)) by default

splits it into a low-rank part ``L`` and a sparse part ``S`` (gross per-entry outliers of the
inversion). It is solved with ``tensorly.decomposition.robust_pca`` (inexact ALM, on tensorly's
PyTorch backend so that torch's thread settings apply). tensorly's objective for a 2-D array is
``reg_J * (||L_(0)||_* + ||L_(1)||_*) + reg_E * ||S||_1``; both unfoldings
of a matrix have the same nuclear norm, so ``reg_J = 1/2, reg_E = lam`` is exactly PCP with ``lam``.
A rank-``k`` subspace (``k = 4`` in the paper) of the low-rank part is then taken by PCA (centred SVD).

Centring: by default each layer's anchors are centred on their per-coordinate median before PCP
(and the median is added back to ``L``); ``centre="none"`` runs PCP on the raw anchors. Measured on
planted motions (8 anchors x 512 dims, 3 % gross outliers, 10 seeds; ``experiments/micromotion/planted_rpca.py``) the
median-centred direction has cosine 0.981 to the truth against 0.965 uncentred (plain PCA: 0.512).
With few anchors PCP also shrinks the motion (about 0.83x its length, also on
clean anchors): the edit strength ``alpha`` absorbs that scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorly as tl
import torch
from tensorly.decomposition import robust_pca as tl_robust_pca
from torch import Tensor

from facegen.errors import FacegenError
from facegen.shapes import assert_shape


class MicromotionError(FacegenError, ValueError):
    """Micromotion anchors, directions or direction files have the wrong shape, content or generator."""


def pcp_lambda(shape: tuple[int, int]) -> float:
    """Default PCP weight ``1 / sqrt(max(n1, n2))`` (Candes et al. 2011, theorem 1.1)."""
    return 1.0 / math.sqrt(max(shape))


def robust_pca(X: np.ndarray | Tensor, lam: float | None = None, tol: float = 1e-7, n_iter_max: int = 1000,
               mu_factor: float = 1.25, learning_rate: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """Principal component pursuit ``X = L + S`` of a matrix ``X [n1, n2]`` (float64 numpy results).

    Wraps ``tensorly.decomposition.robust_pca`` with ``reg_J = 1/2, reg_E = lam`` (see the module
    docstring). ``X`` is scaled to unit spectral norm before solving (PCP is scale-equivariant, the
    solver's ALM schedule is not) and ``L, S`` are scaled back; ALM starts at ``mu = mu_factor``
    (Lin, Chen, Ma 2010: ``1.25 / ||X||_2``) and grows by ``learning_rate`` per iteration until the
    constraint residuals fall below ``tol`` (relative to ``||X||_2``).

    Raises:
        MicromotionError: ``X`` is not a finite 2-D array with at least 2 rows and columns.
    """
    X = X.detach().cpu().double().numpy() if isinstance(X, Tensor) else np.asarray(X, dtype=np.float64)
    assert_shape(X, ["n1", "n2"], "X", error=MicromotionError, hint="robust PCA needs a finite matrix, n1, n2 >= 2")
    if min(X.shape) < 2:
        raise MicromotionError(f"X: robust PCA needs a finite matrix with n1, n2 >= 2, got {X.shape[0]} x {X.shape[1]}")
    if not np.isfinite(X).all():
        raise MicromotionError("X: robust PCA needs a finite matrix; X holds NaN or inf")
    lam = pcp_lambda(X.shape) if lam is None else float(lam)
    scale = float(np.linalg.norm(X, 2))
    if scale == 0.0:
        return np.zeros_like(X), np.zeros_like(X)
    with tl.backend_context("pytorch"):  # torch's thread settings apply (numpy's BLAS may oversubscribe)
        L, S = tl_robust_pca(torch.from_numpy(X / scale), reg_J=0.5, reg_E=lam, mu_init=mu_factor,
                             learning_rate=learning_rate, mu_max=1e9, tol=tol, n_iter_max=n_iter_max, verbose=0)
    return L.numpy() * scale, S.numpy() * scale


def check_anchors(anchors: np.ndarray | Tensor) -> np.ndarray:
    """``anchors [N >= 2, num_ws, w_dim]`` as float64 numpy; raises MicromotionError for another shape."""
    A = anchors.detach().cpu().double().numpy() if isinstance(anchors, Tensor) else np.asarray(anchors, np.float64)
    assert_shape(A, ["N", "num_ws", "w_dim"], "anchors", error=MicromotionError,
                 hint="N >= 2 W+ latents of one identity in motion order")
    if A.shape[0] < 2:
        raise MicromotionError(f"anchors: {A.shape[0]} anchor; a motion needs N >= 2 W+ latents")
    return A


@dataclass
class Subspace:
    """Affine rank-``k`` subspace of one layer.

    ``mean [w_dim]``, orthonormal ``basis [k, w_dim]`` (rows), ``singular_values [k]`` of the centred data.
    """

    mean: np.ndarray
    basis: np.ndarray
    singular_values: np.ndarray

    def reconstruct(self, X: np.ndarray) -> np.ndarray:
        """Orthogonal projection of rows ``X [N, w_dim]`` onto the subspace: ``mean + (X - mean) B^T B``."""
        return self.mean + (X - self.mean) @ self.basis.T @ self.basis


def pca_subspace(X: np.ndarray, rank: int = 4) -> Subspace:
    """Rank-``rank`` PCA subspace of the rows of ``X [N, w_dim]`` (centred SVD; rank is capped at ``N - 1``).

    Raises:
        MicromotionError: ``X`` is not ``[N, w_dim]``.
    """
    assert_shape(X, ["N", "w_dim"], "X", error=MicromotionError, hint="one point per row")
    mean = X.mean(axis=0)
    _, sv, vt = np.linalg.svd(X - mean, full_matrices=False)
    k = max(1, min(rank, X.shape[0] - 1))
    return Subspace(mean=mean, basis=vt[:k], singular_values=sv[:k])


@dataclass
class AnchorDecomposition:
    """Per-layer decomposition of anchors ``[N, num_ws, w_dim]``.

    low_rank, sparse: ``[N, num_ws, w_dim]`` (plain PCA: ``low_rank = anchors``, ``sparse = 0``).
    reconstruction: anchors projected onto each layer's rank-k subspace of ``low_rank``, ``[N, num_ws, w_dim]``.
    subspaces: one :class:`Subspace` per layer.
    """

    low_rank: np.ndarray
    sparse: np.ndarray
    reconstruction: np.ndarray
    subspaces: list[Subspace]


def decompose_anchors(anchors: np.ndarray | Tensor, method: str = "rpca", rank: int = 4, lam: float | None = None,
                      centre: str = "median", **rpca_kwargs) -> AnchorDecomposition:
    """Robust PCA (``method="rpca"``) or plain PCA (``"pca"``) of each W+ layer, then a rank-``rank`` subspace.

    Args:
        anchors: ``[N, num_ws, w_dim]`` W+ latents of one identity in motion order (``N >= 2``).
        lam: PCP weight, default ``1 / sqrt(max(N, w_dim))``.
        centre: ``"median"`` (per-coordinate median of each layer's anchors, removed before PCP and
            added back), ``"mean"`` or ``"none"``; only used by ``"rpca"``.

    Raises:
        MicromotionError: anchors of the wrong shape or an unknown ``method``.
    """
    A = check_anchors(anchors)
    if method not in ("rpca", "pca"):
        raise MicromotionError(f"decomposition method must be 'rpca' or 'pca', got {method!r}")
    if centre not in ("median", "mean", "none"):
        raise MicromotionError(f"centre must be 'median', 'mean' or 'none', got {centre!r}")
    low_rank, sparse, recon, subspaces = np.empty_like(A), np.zeros_like(A), np.empty_like(A), []
    for layer in range(A.shape[1]):
        X = A[:, layer]                                                           # [N, w_dim]
        if method == "rpca":
            c = {"median": np.median(X, axis=0), "mean": X.mean(axis=0), "none": np.zeros(X.shape[1])}[centre]
            L, sparse[:, layer] = robust_pca(X - c, lam=lam, **rpca_kwargs)
            low_rank[:, layer] = L + c
        else:
            low_rank[:, layer] = X
        subspace = pca_subspace(low_rank[:, layer], rank)
        recon[:, layer] = subspace.reconstruct(low_rank[:, layer])
        subspaces.append(subspace)
    return AnchorDecomposition(low_rank=low_rank, sparse=sparse, reconstruction=recon, subspaces=subspaces)
