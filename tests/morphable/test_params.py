"""Parameter vector layout, Euler rotations and random parameter sampling."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from facegen.errors import FacegenError
from facegen.morphable.params import (
    ParamLayout,
    ParamRanges,
    euler_to_matrix,
    sample_params,
)


def test_layout_slices_split_and_join_round_trip():
    layout = ParamLayout(n_id=4, n_exp=3, n_alb=2)
    assert layout.dim == 4 + 3 + 2 + 27 + 3 + 3
    assert (layout.identity, layout.expression, layout.albedo) == (slice(0, 4), slice(4, 7), slice(7, 9))
    assert (layout.sh_coeffs, layout.rotation, layout.translation) == (slice(9, 36), slice(36, 39), slice(39, 42))
    p = torch.arange(2 * layout.dim, dtype=torch.float32).view(2, layout.dim)
    parts = layout.split(p)
    assert list(parts) == ["identity", "expression", "albedo", "sh_coeffs", "rotation", "translation"]
    assert parts["rotation"].tolist() == [[36.0, 37.0, 38.0], [78.0, 79.0, 80.0]]
    assert torch.equal(layout.join(**parts), p)
    partial = layout.join(expression=torch.ones(2, 3))
    assert partial[:, 4:7].eq(1).all() and partial.sum() == 6


def test_layout_errors_name_the_part():
    layout = ParamLayout(2, 2, 2)
    with pytest.raises(FacegenError, match=r"p: expected shape \[B, 39\], got \[1, 40\]; the parameter vector identity 2"):
        layout.split(torch.zeros(1, 40))
    with pytest.raises(FacegenError, match=r"parts\['rotation'\]: expected shape \[B, 3\], got \[1, 4\]"):
        layout.join(rotation=torch.zeros(1, 4))
    with pytest.raises(FacegenError, match="unknown"):
        layout.join(pose=torch.zeros(1, 6))


def test_euler_to_matrix_hand_values_and_scipy():
    quarter = euler_to_matrix(torch.tensor([[0.0, 0.0, math.pi / 2]]))[0]
    assert torch.allclose(quarter @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    yaw = euler_to_matrix(torch.tensor([[0.0, math.pi / 2, 0.0]]))[0]
    assert torch.allclose(yaw @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    angles = torch.tensor([[0.3, -0.7, 1.1], [-1.0, 0.2, 0.05]], dtype=torch.float64)
    expected = Rotation.from_euler("xyz", angles.numpy()).as_matrix()
    assert np.allclose(euler_to_matrix(angles).numpy(), expected, atol=1e-12)


def test_sample_params_is_deterministic_and_within_ranges():
    layout = ParamLayout(5, 6, 3)
    ranges = ParamRanges(yaw=(-0.1, 0.2), translation_z=(100.0, 110.0), exp_active=0.5)
    p = sample_params(layout, 64, torch.Generator().manual_seed(0), ranges)
    assert torch.equal(p, sample_params(layout, 64, torch.Generator().manual_seed(0), ranges))
    parts = layout.split(p)
    yaw, tz = parts["rotation"][:, 1], parts["translation"][:, 2]
    assert yaw.min() >= -0.1 and yaw.max() <= 0.2 and tz.min() >= 100 and tz.max() <= 110
    exp = parts["expression"]
    assert exp.min() >= 0 and exp.max() <= 1 and 0.3 < (exp > 0).float().mean() < 0.7
    assert parts["identity"].abs().max() <= 3.0 and parts["identity"].std() > 0.5
    sh = parts["sh_coeffs"].view(64, 3, 9)
    assert sh[:, :, 0].min() >= -0.25 and sh[:, :, 0].max() <= 0.25
    assert torch.equal(sh[:, 0, 1:], sh[:, 2, 1:])          # directional light is white
    normal = sample_params(layout, 8, torch.Generator().manual_seed(1), ParamRanges(exp_mode="normal"))
    assert (layout.split(normal)["expression"] < 0).any()
    with pytest.raises(FacegenError, match="exp_mode"):
        sample_params(layout, 1, None, ParamRanges(exp_mode="bogus"))
