"""Subset selection on a planted mixture is even; coverage rises; W inversion of a pool is batched."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.augment.selection import (
    SelectionError,
    fit_coverage_basis,
    invert_pool,
    latent_coverage,
    plot_coverage,
    select_subset,
)

CENTRES = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5]], float)


def mixture(seed=0, dims=2):
    """1000 points: 90 % around the first centre, 2.5 % around each of the other four."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(CENTRES[0], 0.5, (900, 2))] + [rng.normal(c, 0.5, (25, 2)) for c in CENTRES[1:]])
    labels = np.repeat(np.arange(5), [900, 25, 25, 25, 25])
    if dims > 2:  # the same structure in a random 2D plane of a higher-dimensional space, plus noise
        basis = np.linalg.qr(rng.normal(size=(dims, dims)))[0][:, :2]
        x = x @ basis.T + rng.normal(0, 0.05, (len(x), dims))
    return x, labels


@pytest.mark.parametrize("method", ["kmeans", "fps", "inverse_density"])
@pytest.mark.parametrize("dims", [2, 32])
def test_selection_is_even_across_clusters(method, dims):
    x, labels = mixture(dims=dims)
    k = 20
    idx = select_subset(x, k, method, seed=0)
    assert idx.dtype == np.int64 and len(idx) == k and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx], minlength=5)
    assert counts.min() >= 1 and counts.max() <= 8, counts                # k / 5 = 4 each; random: ~18 / 0.5
    random = np.random.default_rng(0).choice(len(x), k, replace=False)
    assert np.bincount(labels[random], minlength=5)[0] >= 15               # what an unselected draw looks like


@pytest.mark.parametrize("method", ["kmeans", "fps", "inverse_density"])
def test_coverage_rises_after_selection(method):
    x, _ = mixture()
    basis = fit_coverage_basis(x)
    k = 20
    pool = latent_coverage(x, basis)
    chosen = latent_coverage(x[select_subset(x, k, method)], basis)
    random = latent_coverage(x[np.random.default_rng(1).choice(len(x), k, replace=False)], basis)
    assert chosen["occupancy"] > random["occupancy"]
    assert chosen["entropy_normalised"] > pool["entropy_normalised"] + 0.1
    assert chosen["max_cell_fraction"] < pool["max_cell_fraction"]


def test_plain_kmeans_follows_the_mass():
    x, labels = mixture()
    counts = np.bincount(labels[select_subset(x, 20, "kmeans", flatten_density=False)], minlength=5)
    assert counts[0] >= 10                                                  # why the density flattening exists


def test_coverage_hand_computed():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])       # one point per cell of a 2x2 grid
    cov = latent_coverage(x, grid=2)
    assert cov["occupancy"] == 1.0 and cov["occupied_cells"] == 4
    assert cov["entropy"] == pytest.approx(np.log(4)) and cov["entropy_normalised"] == pytest.approx(1.0)
    basis = fit_coverage_basis(x)
    half = latent_coverage(x[[0, 0, 1]], basis, grid=2)
    assert half["occupancy"] == 0.5 and half["max_cell_fraction"] == pytest.approx(2 / 3)
    assert half["entropy"] == pytest.approx(-(2 / 3) * np.log(2 / 3) - (1 / 3) * np.log(1 / 3))
    assert latent_coverage(x[[0, 0, 1]], x, grid=2) == half                # the pool's latents as the basis
    with pytest.raises(SelectionError, match=r"latents: expected shape \[N, \d+\], got \[3, 5\]; D of the latents"):
        latent_coverage(np.zeros((3, 5)), basis)


def test_selection_errors():
    x, _ = mixture()
    with pytest.raises(SelectionError, match="between 1"):
        select_subset(x, 0)
    with pytest.raises(SelectionError, match="between 1"):
        select_subset(x, len(x) + 1)
    with pytest.raises(SelectionError, match="unknown selection method"):
        select_subset(x, 5, "random")
    with pytest.raises(SelectionError, match="NaN"):
        select_subset(np.full((4, 2), np.nan), 2)
    assert select_subset(x[:7], 7).tolist() == list(range(7))


def test_plot_coverage_writes_png(tmp_path):
    x, _ = mixture(dims=8)
    path = plot_coverage(x, select_subset(x, 20, "fps"), tmp_path / "cov.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_invert_pool_batches_projection():
    from facegen.models.stylegan2.networks import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=128, channel_max=16).eval()
    with torch.no_grad():
        images = G(torch.randn(5, 16)).clamp(-1, 1)
    kwargs = dict(batch_size=2, num_steps=3, w_avg_samples=64, seed=0)
    w = invert_pool(G, images, **kwargs)
    assert w.shape == (5, 16) and w.dtype == np.float32 and np.isfinite(w).all()
    np.testing.assert_array_equal(w, invert_pool(G, images, **kwargs))     # seeded
    assert np.abs(w[0] - w[1]).max() > 0                                    # each image its own latent
    encoded = invert_pool(G, images, batch_size=2, encoder=lambda x: x.flatten(1)[:, :16])
    np.testing.assert_allclose(encoded, images.flatten(1)[:, :16].numpy())
