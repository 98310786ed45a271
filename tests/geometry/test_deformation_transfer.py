"""Deformation transfer: exact for rigid changes (any target) and affine changes (scaled target); not delta transfer."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from facegen.errors import MeshFormatError
from facegen.geometry import DeformationTransfer, deformation_transfer

SHEAR = np.array([[1.2, 0.3, 0.0], [0.0, 0.7, 0.2], [0.1, 0.0, 1.5]])  # shear + non-uniform scale
ROTATION = Rotation.from_euler("xyz", [0.3, -0.5, 0.9]).as_matrix()
SHIFT = np.array([5.0, -3.0, 2.0])


@pytest.fixture
def source(icosphere):
    vertices, faces = icosphere
    return vertices * 50.0, faces  # a 50 mm sphere


def expected_linear(matrix, source_neutral, source_deformed, target):
    """``target @ matrix.T`` translated so its mean displacement equals the source's."""
    result = target @ matrix.T
    return result + (source_deformed - source_neutral).mean(0) - (result - target).mean(0)


def test_rigid_change_is_exact_on_any_target(source):
    neutral, faces = source
    rng = np.random.default_rng(0)
    target = neutral * [1.3, 0.8, 1.0] + rng.normal(scale=2.0, size=neutral.shape)
    deformed = neutral @ ROTATION.T + SHIFT
    result = deformation_transfer(neutral, deformed, target, faces)
    expected = expected_linear(ROTATION, neutral, deformed, target)
    assert np.abs(result - expected).max() <= 1e-6 * np.abs(expected).max()


def test_affine_change_is_exact_on_a_scaled_copy(source):
    neutral, faces = source
    target = 1.7 * neutral + [10.0, 0.0, -4.0]
    deformed = neutral @ SHEAR.T + SHIFT
    result = deformation_transfer(neutral, deformed, target, faces)
    expected = expected_linear(SHEAR, neutral, deformed, target)
    assert np.abs(result - expected).max() <= 1e-6 * np.abs(expected).max()
    assert np.allclose((result - target).mean(0), (deformed - neutral).mean(0))


def test_is_not_delta_transfer(source):
    neutral, faces = source
    target = neutral * [1.5, 0.7, 1.0]
    deformed = neutral @ ROTATION.T
    delta = target + (deformed - neutral)
    result = deformation_transfer(neutral, deformed, target, faces)
    # Delta transfer distorts the rotated target; deformation transfer keeps its edge lengths.
    edges = faces[:, :2]
    target_lengths = np.linalg.norm(target[edges[:, 0]] - target[edges[:, 1]], axis=1)
    result_lengths = np.linalg.norm(result[edges[:, 0]] - result[edges[:, 1]], axis=1)
    delta_lengths = np.linalg.norm(delta[edges[:, 0]] - delta[edges[:, 1]], axis=1)
    np.testing.assert_allclose(result_lengths, target_lengths, rtol=1e-6)
    assert np.abs(delta_lengths - target_lengths).max() > 1.0  # mm
    assert np.abs(result - delta).max() > 5.0


def test_components_and_isolated_vertices_keep_their_own_translation(source):
    neutral, faces = source
    count = len(neutral)
    # Two spheres plus one vertex in no triangle; the second sphere moves, the first rotates.
    two = np.concatenate([neutral, neutral + [200.0, 0, 0], [[0.0, 0, 300]]])
    two_faces = np.concatenate([faces, faces + count])
    deformed = np.concatenate([neutral @ ROTATION.T, neutral + [200.0, 0, 0] + SHIFT, [[1.0, 2, 303]]])
    target = two * 1.1
    result = DeformationTransfer(target, two_faces)(two, deformed)
    np.testing.assert_allclose(result[count:-1], target[count:-1] + SHIFT, atol=1e-6)
    np.testing.assert_allclose(result[-1], target[-1] + [1.0, 2, 3], atol=1e-9)
    np.testing.assert_allclose(result[:count], target[:count] @ ROTATION.T, atol=1e-6)


def test_bad_inputs_raise(source):
    neutral, faces = source
    with pytest.raises(MeshFormatError, match=r"source_deformed: expected shape \[162, 3\], got \[161, 3\]"):
        deformation_transfer(neutral, neutral[:-1], neutral, faces)
    with pytest.raises(MeshFormatError, match="zero-area"):
        flat = neutral.copy()
        flat[faces[0, 1]] = flat[faces[0, 0]]
        deformation_transfer(neutral, neutral, flat, faces)
    with pytest.raises(MeshFormatError, match="outside"):
        deformation_transfer(neutral[:10], neutral[:10], neutral[:10], faces)
