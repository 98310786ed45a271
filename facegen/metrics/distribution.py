"""Distances between two sets of samples in a feature space: Fréchet distance, k-NN precision and recall.

- :func:`frechet_distance`: ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` between Gaussians fitted to
  the two sets (Heusel et al. 2017, eq. 6; in Inception features this is FID, in any other features it is a
  Fréchet distance *in those features* and must be labelled so).
- :func:`precision_recall`: improved precision and recall (Kynkäänniemi et al. 2019, sec. 3, eqs. 1-2): each
  set's manifold is the union of hyperspheres around its samples with the radius of the k-th nearest neighbour
  (k = 3 as the paper and NVlabs ``metrics/precision_recall.py``); precision is the fraction of generated
  samples inside the real manifold, recall the fraction of real samples inside the generated one.
- :func:`wasserstein_per_dim`: 1-D Wasserstein-1 distance per feature (e.g. per regressed face parameter).

Features are ``[N, D]`` arrays or tensors (float64 inside); distances are Euclidean.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from facegen.errors import ShapeError
from facegen.shapes import assert_shape


def _as_features(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().double().cpu()
    assert_shape(x, ["N", "D"], name)
    if x.shape[0] < 2:
        raise ShapeError(f"{name}: needs at least 2 samples, got {x.shape[0]}")
    return x


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to ``features_a [N_a, D]`` and ``features_b [N_b, D]``.

    ``Tr((S_a S_b)^(1/2))`` is the sum of the square roots of the eigenvalues of ``S_a S_b`` (real and >= 0
    for covariance matrices; tiny negative round-off is clipped), which avoids ``scipy.linalg.sqrtm``'s
    complex round-off. Unbiased covariances (``N - 1``).

    Raises:
        ShapeError: not ``[N, D]`` with the same ``D``, or fewer than 2 samples.
    """
    a, b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    assert_shape(b, [b.shape[0], a.shape[1]], "features_b", hint="the same feature size D as features_a")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    eig = torch.linalg.eigvals(cov_a @ cov_b).real.clamp(min=0)
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * eig.sqrt().sum())


def knn_radii(features: torch.Tensor, k: int = 3, batch: int = 1024) -> torch.Tensor:
    """``[N]`` distance of each sample to its ``k``-th nearest neighbour in the same set (itself excluded)."""
    radii = []
    for start in range(0, len(features), batch):
        d = torch.cdist(features[start:start + batch], features)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 1st is the sample itself (distance 0)
    return torch.cat(radii)


def _inside(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """``[Q]`` bool: query within ``radii[j]`` of some ``points[j]``."""
    hits = []
    for start in range(0, len(queries), batch):
        d = torch.cdist(queries[start:start + batch], points)
        hits.append((d <= radii[None]).any(dim=1))
    return torch.cat(hits)


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``fake [N_f, D]`` against ``real [N_r, D]``.

    Returns ``(precision, recall)`` in [0, 1]. Two sets drawn from one distribution score high on both
    (the floor of a metric is measured so); mode collapse lowers recall, off-manifold samples precision.

    Raises:
        ShapeError: not ``[N, D]`` with the same ``D``, or ``k`` >= the number of samples of a set.
    """
    r, f = _as_features(real, "real"), _as_features(fake, "fake")
    assert_shape(f, [f.shape[0], r.shape[1]], "fake", hint="the same feature size D as real")
    if k >= min(len(r), len(f)):
        raise ShapeError(f"precision_recall: k={k} needs more than k samples per set, got {len(r)} and {len(f)}")
    precision = _inside(f, r, knn_radii(r, k)).double().mean()
    recall = _inside(r, f, knn_radii(f, k)).double().mean()
    return float(precision), float(recall)


def wasserstein_per_dim(samples_a, samples_b) -> np.ndarray:
    """``[D]`` Wasserstein-1 distance between the marginals of ``samples_a [N_a, D]`` and ``samples_b [N_b, D]``
    (scipy ``wasserstein_distance``), in the features' own unit."""
    a, b = _as_features(samples_a, "samples_a").numpy(), _as_features(samples_b, "samples_b").numpy()
    assert_shape(b, [b.shape[0], a.shape[1]], "samples_b")
    return np.array([wasserstein_distance(a[:, i], b[:, i]) for i in range(a.shape[1])])
