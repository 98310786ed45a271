"""Shape checks of facegen.geometry's entry points: facegen.shapes wording, MeshFormatError."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.errors import MeshFormatError
from facegen.geometry import (
    DeformationTransfer,
    build_mesh_hierarchy,
    deformation_transfer,
    save_obj,
    spiral_indices,
    unique_edges,
)

TRIANGLE = np.array([[0, 1, 2]])


def test_save_obj_names_the_file_and_the_array(tmp_path):
    with pytest.raises(MeshFormatError, match=r"m.obj: vertices: expected shape \[V, 3\], got \[3, 2\]"):
        save_obj(tmp_path / "m.obj", np.zeros((3, 2)), TRIANGLE)
    assert not (tmp_path / "m.obj").exists()


def test_edges_and_spirals_want_triangles():
    with pytest.raises(MeshFormatError, match=r"^faces: expected shape \[F, 3\], got \[1, 4\]"):
        unique_edges(np.array([[0, 1, 2, 3]]))
    with pytest.raises(MeshFormatError, match=r"^faces: expected shape \[F, 3\], got \[1, 4\]"):
        spiral_indices(torch.tensor([[0, 1, 2, 3]]), 4)
    with pytest.raises(MeshFormatError, match=r"^vertices: expected shape \[3, 3\], got \[4, 3\]"):
        spiral_indices(TRIANGLE, 3, vertices=np.zeros((4, 3)))


def test_hierarchy_and_transfer_need_faces():
    with pytest.raises(MeshFormatError, match=r"^template faces: no triangles \(F = 0\)"):
        build_mesh_hierarchy(np.eye(3), np.zeros((0, 3), np.int64))
    with pytest.raises(MeshFormatError, match=r"^faces: expected shape \[F, 3\], got \[3\]"):
        DeformationTransfer(np.eye(3), TRIANGLE[0])
    with pytest.raises(MeshFormatError, match=r"^target_neutral: expected shape \[V, 3\], got \[3, 2\]"):
        deformation_transfer(np.eye(3), np.eye(3), np.zeros((3, 2)), TRIANGLE)
