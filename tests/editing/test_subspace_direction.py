"""Micromotion directions: exact transfer on a toy linear generator, the last anchor, and the .npz format."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facegen.editing.subspace import (
    MicromotionDirection,
    MicromotionError,
    decode_direction,
    edit_strengths,
    generator_sha1,
    load_direction,
    render_edit,
    save_direction,
)

torch.set_num_threads(1)
NUM_WS, W_DIM = 4, 24


class LinearSynthesis(nn.Module):
    """Toy linear 'synthesis': ``image = reshape(A @ vec(ws) + b)`` ``[B, 3, 8, 8]``."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(torch.randn(3 * 8 * 8, NUM_WS * W_DIM, generator=g) / 10)
        self.b = nn.Parameter(torch.randn(3 * 8 * 8, generator=g))
        self.num_ws, self.w_dim = NUM_WS, W_DIM

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        return (ws.flatten(1) @ self.A.T + self.b).view(-1, 3, 8, 8)


class LinearGenerator(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        self.synthesis = LinearSynthesis(seed)
        self.num_ws, self.w_dim, self.img_resolution, self.img_channels = NUM_WS, W_DIM, 8, 3


def motion_anchors(n=8, seed=0):
    """Anchors ``w_A + s_i * D`` (s_i = 0..1) with D acting on a 2-D motion subspace per layer, and D."""
    rng = np.random.default_rng(seed)
    w_a = rng.standard_normal((NUM_WS, W_DIM))
    D = rng.standard_normal((NUM_WS, W_DIM))
    E = rng.standard_normal((NUM_WS, W_DIM))
    s = np.linspace(0, 1, n)
    anchors = w_a + s[:, None, None] * D + (s * (1 - s))[:, None, None] * E  # curved path in a 2-D plane
    return anchors, D


@pytest.mark.parametrize("method", ["rpca", "pca", "two_anchor"])
def test_direction_transfer_on_a_linear_generator_is_exact(method):
    G = LinearGenerator()
    anchors, D = motion_anchors()
    direction = decode_direction(anchors, method=method, rank=4)
    assert direction.dv.shape == (NUM_WS, W_DIM)
    if method == "rpca":  # PCP with 8 anchors shrinks the motion (soft thresholding) but keeps its direction
        cos = (direction.dv * D).sum() / np.linalg.norm(direction.dv) / np.linalg.norm(D)
        assert cos > 0.98 and 0.6 < np.linalg.norm(direction.dv) / np.linalg.norm(D) < 1.0
    else:
        assert np.allclose(direction.dv, D, atol=1e-4)  # last minus first anchor of a clean motion
    # another identity: G(w_B + s dV) equals G(w_B) + s (G(w_A + dV) - G(w_A)) for a linear G
    w_b = torch.randn(2, NUM_WS, W_DIM)
    s = edit_strengths(direction, 5, alpha=2.0)
    frames = render_edit(G, w_b, direction, s)                                   # [2, 5, 3, 8, 8]
    w_a = torch.from_numpy(anchors[0]).float()[None]
    with torch.no_grad():
        motion = G.synthesis(w_a + direction.tensor()) - G.synthesis(w_a)
        expected = G.synthesis(w_b)[:, None] + s[None, :, None, None, None] * motion[:, None]
    assert torch.allclose(frames, expected, atol=1e-3)


def test_robust_direction_ignores_sparse_outliers_that_pca_keeps():
    anchors, D = motion_anchors(n=16, seed=1)
    rng = np.random.default_rng(5)
    corrupted = anchors.copy()
    for i in (0, 7, 15):  # gross errors in a few coordinates, also of the end anchors
        idx = rng.choice(W_DIM, 2, replace=False)
        corrupted[i, :, idx] += 8.0 * rng.choice([-1.0, 1.0], (2, NUM_WS))
    errors = {m: np.linalg.norm(decode_direction(corrupted, method=m, rank=2).dv - D) / np.linalg.norm(D)
              for m in ("rpca", "pca", "two_anchor")}
    assert errors["pca"] > 1.0 and errors["two_anchor"] > 1.0  # the outliers dominate
    assert errors["rpca"] < 0.15


def test_the_last_anchor_is_used_and_layers_restrict_the_direction():
    anchors, _ = motion_anchors()
    anchors[-1] += 1.0  # the reference code's [:-1] would miss this
    direction = decode_direction(anchors, method="two_anchor", layers=[1, 3])
    expected = anchors[-1] - anchors[0]
    assert np.allclose(direction.dv[[1, 3]], expected[[1, 3]]) and not direction.dv[[0, 2]].any()
    assert direction.layers == [1, 3]
    with pytest.raises(MicromotionError, match="subset of 0..3"):
        decode_direction(anchors, layers=[4])
    with pytest.raises(MicromotionError, match="method"):
        decode_direction(anchors, method="ica")


def test_direction_file_round_trips_and_checks_the_generator(tmp_path):
    G = LinearGenerator()
    anchors, _ = motion_anchors()
    direction = decode_direction(anchors, method="rpca", rank=3, layers=[0, 2], alpha_range=(-0.5, 2.0),
                                 source="video clip.mp4 frames [0, 5]", generator_sha1=generator_sha1(G))
    path = save_direction(tmp_path / "sub" / "smile.npz", direction)
    loaded = load_direction(path, G)
    assert np.array_equal(loaded.dv, direction.dv) and loaded.dv.dtype == np.float32
    for key in ("layers", "alpha_range", "method", "rank", "source", "generator_sha1", "meta"):
        assert getattr(loaded, key) == getattr(direction, key), key
    other = LinearGenerator(seed=1)
    assert generator_sha1(other) != generator_sha1(G)
    with pytest.raises(MicromotionError, match="made with generator"):
        load_direction(path, other)
    assert load_direction(path, other, strict=False).method == "rpca"


def test_bad_direction_files_raise(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(MicromotionError, match="junk.npz"):
        load_direction(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", dv=np.zeros((4, 24), np.float32))
    with pytest.raises(MicromotionError, match="missing keys"):
        load_direction(tmp_path / "partial.npz")
    d = MicromotionDirection(dv=np.zeros((3, 24), np.float32), layers=[0, 1, 2])
    save_direction(tmp_path / "small.npz", d)
    with pytest.raises(MicromotionError, match=r"small.npz: dv: expected shape \[4, 24\], got \[3, 24\]"):
        load_direction(tmp_path / "small.npz", LinearGenerator())
