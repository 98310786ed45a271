"""Shape checks of facegen.editing's entry points: facegen.shapes wording, MicromotionError / StyleGANInputError."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.editing.stylespace import mix_layers
from facegen.editing.subspace import (
    MicromotionError,
    decode_direction,
    edit_latents,
    frame_grid,
    pca_subspace,
    robust_pca,
)
from facegen.editing.subspace.anchors import load_anchors_w_plus
from facegen.errors import StyleGANInputError


def test_edit_latents_checks_strengths_and_mask():
    w, dv = torch.zeros(2, 3, 4), torch.ones(3, 4)
    with pytest.raises(MicromotionError, match=r"^strengths: expected shape \[T\], got \[2, 1\]"):
        edit_latents(w, dv, torch.zeros(2, 1))
    with pytest.raises(MicromotionError, match=r"^mask: expected shape \[3\], got \[4\]; one weight per W\+ layer"):
        edit_latents(w, dv, torch.zeros(2), torch.ones(4))
    with pytest.raises(MicromotionError, match=r"^w_plus: expected shape \[B, 3, 4\], got \[2, 3, 5\]"):
        edit_latents(torch.zeros(2, 3, 5), dv, torch.zeros(2))
    with pytest.raises(MicromotionError, match=r"^images: expected shape \[B, T, C, H, W\], got \[2, 3, 8, 8\]"):
        frame_grid(torch.zeros(2, 3, 8, 8))


def test_anchor_checks():
    with pytest.raises(MicromotionError, match=r"^anchors: 1 anchor; a motion needs N >= 2"):
        decode_direction(np.zeros((1, 3, 8)))
    with pytest.raises(MicromotionError, match=r"^X: expected shape \[n1, n2\], got \[5\]"):
        robust_pca(np.zeros(5))
    with pytest.raises(MicromotionError, match=r"^X: expected shape \[N, w_dim\], got \[5\]"):
        pca_subspace(np.zeros(5))


def test_anchor_files_name_the_file(tmp_path):
    np.savez(tmp_path / "a.npz", w_plus=np.zeros((4, 8)))
    with pytest.raises(MicromotionError, match=r"a.npz: w_plus: expected shape \[N, num_ws, w_dim\], got \[4, 8\]"):
        load_anchors_w_plus(tmp_path / "a.npz")


def test_style_mixing_shapes():
    target = torch.zeros(2, 4, 8)
    assert torch.equal(mix_layers(target, torch.ones(1, 4, 8), [0])[:, 0], torch.ones(2, 8))  # [1, ...] is shared
    with pytest.raises(StyleGANInputError, match=r"^ws_source: expected shape \[2, 4, 8\], got \[2, 5, 8\]"):
        mix_layers(target, torch.ones(2, 5, 8), [0])
    with pytest.raises(StyleGANInputError, match=r"^ws_target: expected shape \[B, num_ws, w_dim\], got \[4, 8\]"):
        mix_layers(target[0], target, [0])
