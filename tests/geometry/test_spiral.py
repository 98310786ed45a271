"""SpiralNet++ spirals from topology: hand-derived sequences on a hexagon fan and a 3x3 grid."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.geometry import load_mesh, spiral_indices
from facegen.geometry.spiral import one_rings

# Hexagon fan: centre 0, rim 1..6 counter-clockwise seen from +z.
HEXAGON = np.array([[0, i, i % 6 + 1] for i in range(1, 7)])

# 3x3 grid, vertex 3*r + c at (x=c, y=r); each quad (a, a+1, a+4, a+3) split along a -> a+4.
GRID = np.array([[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [3, 4, 7], [3, 7, 6], [4, 5, 8], [4, 8, 7]])
GRID_VERTICES = np.array([[c, r, 0.0] for r in range(3) for c in range(3)])


def test_one_rings_are_clockwise_and_start_on_the_boundary():
    rings = one_rings(HEXAGON, 7)
    assert rings[0] == [1, 6, 5, 4, 3, 2]  # interior: from p of the first face (0, 1, 2), clockwise
    assert rings[1] == [6, 0, 2]  # boundary: from the neighbour across the edge with no face on its left
    grid_rings = one_rings(GRID, 9)
    assert grid_rings[4] == [0, 3, 7, 8, 5, 1]
    assert grid_rings[3] == [6, 7, 4, 0] and grid_rings[5] == [2, 1, 4, 8]


def test_hexagon_spirals_hand_derived():
    spirals = spiral_indices(HEXAGON, 7, seq_length=7)
    assert spirals.dtype == torch.int64 and spirals.shape == (7, 7)
    assert spirals[0].tolist() == [0, 1, 6, 5, 4, 3, 2]
    # Vertex 1: ring [6, 0, 2]; next ring from 6 -> 5, from 0 (read from 6 on) -> 4, 3.
    assert spirals[1].tolist() == [1, 6, 0, 2, 5, 4, 3]


def test_grid_spirals_hand_derived():
    spirals = spiral_indices(GRID, 9, seq_length=9)
    # Centre: ring [0, 3, 7, 8, 5, 1]; second ring: 6 (from 3), 2 (from 5).
    assert spirals[4].tolist() == [4, 0, 3, 7, 8, 5, 1, 6, 2]
    # Corner: ring [3, 4, 1]; then 6, 7 (from 3), 8, 5 (from 4), 2 (from 1).
    assert spirals[0].tolist() == [0, 3, 4, 1, 6, 7, 8, 5, 2]
    assert (spirals[:, 0] == torch.arange(9)).all()


def test_dilation_takes_every_dth_of_the_long_spiral():
    spirals = spiral_indices(GRID, 9, seq_length=3, dilation=2)
    assert spirals[4].tolist() == [4, 3, 8]  # [4, 0, 3, 7, 8, 5][::2]
    assert spirals.shape == (9, 3)


def test_short_spirals_are_padded():
    # Without positions the whole component is kept in ring order, then the vertex repeats.
    assert spiral_indices(GRID, 9, seq_length=12)[0].tolist() == [0, 3, 4, 1, 6, 7, 8, 5, 2, 0, 0, 0]
    # With positions, the reference replaces the spiral by the nearest vertices in space.
    vertices = GRID_VERTICES * [1.0, 1.1, 1.0]  # break distance ties
    padded = spiral_indices(GRID, 9, seq_length=12, vertices=vertices)[0].tolist()
    assert padded == [0, 1, 3, 4, 2, 6, 5, 7, 8, 0, 0, 0]
    isolated = spiral_indices(HEXAGON, 8, seq_length=3, vertices=np.random.default_rng(0).normal(size=(8, 3)))
    assert isolated[7, 0] == 7


def test_non_manifold_topology_is_tolerated():
    # Bowtie (two fans at vertex 0) and an edge (0, 1) shared by three triangles.
    faces = np.array([[0, 1, 2], [0, 3, 4], [1, 0, 5], [0, 1, 6]])
    # Around 0 the clockwise links are 2->1, 1->5, 4->3, 6->1: fans from the boundary starts 2, 4, 6.
    assert one_rings(faces, 7)[0] == [2, 1, 5, 4, 3, 6]
    spirals = spiral_indices(faces, 7, seq_length=5)
    assert spirals[0].tolist() == [0, 2, 1, 5, 4]
    assert (spirals[:, 0] == torch.arange(7)).all()


@pytest.mark.realdata
def test_coma_template_spirals_cover_one_ring(shared_data):
    mesh = load_mesh(shared_data / "coma_template/template.obj", expected_vertices=5023)
    spirals = spiral_indices(mesh.faces, 5023, vertices=mesh.vertices)
    rings = one_rings(mesh.faces, 5023)
    assert spirals.shape == (5023, 9)
    interior = [v for v in range(5023) if len(rings[v]) >= 8]
    for v in interior[::50]:
        assert spirals[v, 1 : 1 + len(rings[v])].tolist() == rings[v][:8]
