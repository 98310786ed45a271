"""CoMA hierarchy: vertex-subset decimation, exact U @ D on kept vertices, barycentric up-sampling, cache."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facegen.errors import MeshFormatError
from facegen.geometry import build_mesh_hierarchy, load_mesh
from facegen.geometry.hierarchy import closest_surface_points


@pytest.fixture
def hierarchy(icosphere):
    vertices, faces = icosphere
    return build_mesh_hierarchy(vertices * 100.0, faces, factors=(4, 4), seq_length=9)


def test_levels_keep_a_quarter_of_the_vertices(hierarchy):
    counts = [len(v) for v in hierarchy.vertices]
    assert counts == [162, 41, 11]
    assert [s.shape for s in hierarchy.spiral_indices] == [(162, 9), (41, 9), (11, 9)]
    assert [tuple(d.shape) for d in hierarchy.down_transform] == [(41, 162), (11, 41)]
    assert [tuple(u.shape) for u in hierarchy.up_transform] == [(162, 41), (41, 11)]


def test_down_transform_selects_original_vertices(hierarchy):
    for level, down in enumerate(hierarchy.down_transform):
        assert down.dtype == torch.float32 and down.layout == torch.sparse_coo
        assert torch.equal(down.values(), torch.ones(down.shape[0]))
        kept = down.indices()[1].numpy()
        np.testing.assert_array_equal(hierarchy.vertices[level + 1], hierarchy.vertices[level][kept])


def test_up_then_down_reproduces_kept_vertices_exactly(hierarchy):
    for level, (down, up) in enumerate(zip(hierarchy.down_transform, hierarchy.up_transform)):
        x = torch.randn(3, down.shape[1], 5)  # any per-vertex signal
        y = torch.stack([up @ (down @ xb) for xb in x])
        kept = down.indices()[1]
        assert torch.equal(y[:, kept], x[:, kept])


def test_up_transform_is_barycentric_on_the_closest_coarse_triangle(hierarchy):
    fine, coarse, coarse_faces = hierarchy.vertices[0], hierarchy.vertices[1], hierarchy.faces[1]
    up = hierarchy.up_transform[0].to_dense().double().numpy()
    assert ((up > 0).sum(axis=1) <= 3).all() and (up >= 0).all()
    np.testing.assert_allclose(up.sum(axis=1), 1.0, atol=1e-6)
    # Brute force over every triangle: the up-sampled point is the closest surface point.
    import trimesh

    corners = np.repeat(coarse[coarse_faces], len(fine), axis=0)
    queries = np.tile(fine, (len(coarse_faces), 1))
    distance = np.linalg.norm(trimesh.triangles.closest_point(corners, queries) - queries, axis=1)
    distance = distance.reshape(len(coarse_faces), len(fine))
    upsampled = up @ coarse
    np.testing.assert_allclose(np.linalg.norm(upsampled - fine, axis=1), distance.min(axis=0), atol=1e-4)


def test_closest_surface_points_matches_brute_force():
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(30, 3))
    faces = np.array([rng.choice(30, 3, replace=False) for _ in range(40)])
    points = rng.normal(size=(50, 3)) * 2
    triangle, closest = closest_surface_points(points, vertices, faces, chunk=16)
    import trimesh

    corners = vertices[faces]
    brute = np.array([
        np.linalg.norm(trimesh.triangles.closest_point(corners, np.repeat(p[None], len(faces), 0)) - p, axis=1).min()
        for p in points
    ])
    np.testing.assert_allclose(np.linalg.norm(closest - points, axis=1), brute, atol=1e-9)


def test_cache_round_trip(icosphere, tmp_path):
    vertices, faces = icosphere
    first = build_mesh_hierarchy(vertices, faces, factors=(4,), cache_dir=tmp_path)
    files = sorted(tmp_path.glob("mesh_hierarchy_*.npz"))
    assert len(files) == 1 and len(files[0].stem.split("_")[-1]) == 40  # sha1 hex
    again = build_mesh_hierarchy(vertices, faces, factors=(4,), cache_dir=tmp_path)
    assert torch.equal(first.up_transform[0].to_dense(), again.up_transform[0].to_dense())
    assert torch.equal(first.spiral_indices[1], again.spiral_indices[1])
    build_mesh_hierarchy(vertices, faces, factors=(4,), seq_length=5, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("mesh_hierarchy_*.npz"))) == 2  # arguments are part of the key


def test_bad_inputs_raise(icosphere):
    vertices, faces = icosphere
    with pytest.raises(MeshFormatError, match=r"template vertices: expected shape \[V, 3\], got \[\d+, 2\]"):
        build_mesh_hierarchy(vertices[:, :2], faces)
    with pytest.raises(MeshFormatError, match="outside"):
        build_mesh_hierarchy(vertices[:100], faces)
    with pytest.raises(MeshFormatError, match="too small"):
        build_mesh_hierarchy(vertices, faces, factors=(4, 4, 4, 4))


@pytest.mark.realdata
def test_coma_template_counts(shared_data):
    mesh = load_mesh(shared_data / "coma_template/template.obj", expected_vertices=5023)
    hierarchy = build_mesh_hierarchy(mesh.vertices, mesh.faces)
    counts = [len(v) for v in hierarchy.vertices]
    assert counts == [5023, 1256, 314, 79, 20]  # the reference QSlim counts, ceil(V / 4) per level
    assert all(math.isclose(a / b, 4, rel_tol=0.02) for a, b in zip(counts[:-1], counts[1:]))
    for down, up, fine in zip(hierarchy.down_transform, hierarchy.up_transform, hierarchy.vertices):
        x = torch.as_tensor(fine, dtype=torch.float32)
        kept = down.indices()[1]
        assert torch.equal((up @ (down @ x))[kept], x[kept])
