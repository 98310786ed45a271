"""Deformation transfer between meshes in full vertex/face correspondence.

Reference: Sumner & Popovic, "Deformation Transfer for Triangle Meshes", SIGGRAPH 2004
(section 3, eqs. 1-4 and 8, with the identity triangle correspondence).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

from facegen.errors import MeshFormatError
from facegen.geometry.io import _as_numpy
from facegen.shapes import assert_shape

_SOLVER_CACHE_SIZE = 4
_solver_cache: OrderedDict[str, "DeformationTransfer"] = OrderedDict()


def _frames(vertices: np.ndarray, faces: np.ndarray, name: str) -> np.ndarray:
    """``[F, 3, 3]`` frames ``[v2 - v1, v3 - v1, v4 - v1]`` (columns), with the fourth vertex
    ``v4 = v1 + (v2 - v1) x (v3 - v1) / sqrt(|(v2 - v1) x (v3 - v1)|)`` (Sumner & Popovic eq. 1)."""
    v1, v2, v3 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    normal = np.cross(v2 - v1, v3 - v1)
    length = np.linalg.norm(normal, axis=1)
    degenerate = np.flatnonzero(length <= 1e-12 * max(np.abs(vertices).max(), 1.0) ** 2)
    if len(degenerate):
        raise MeshFormatError(
            f"{name}: {len(degenerate)} zero-area triangles (first: face {degenerate[0]}); "
            "deformation gradients need non-degenerate triangles"
        )
    fourth = normal / np.sqrt(length)[:, None]
    return np.stack([v2 - v1, v3 - v1, fourth], axis=2)


class DeformationTransfer:
    """Sparse least-squares solver for one target neutral mesh, factorised once.

    Unknowns are the target's deformed vertices and one free fourth (normal) vertex per
    triangle. Each triangle's deformation gradient ``T_j = X_j E V_j^{-1}`` is linear in them;
    ``min sum_j ||T_j - S_j||_F^2`` (eq. 8 with identity correspondence) is solved through its
    normal equations with one vertex per connected component held fixed, then each component
    is translated so that its mean displacement equals the source's over the same vertices.

    Args:
        target_neutral: ``[V, 3]`` target rest shape (any unit).
        faces: ``[F, 3]`` int triangles shared by source and target.

    Raises:
        MeshFormatError: wrong shapes, face indices out of range, or zero-area target triangles.
    """

    def __init__(self, target_neutral, faces):
        self.target_neutral = _check_vertices(target_neutral, "target_neutral")
        self.faces = _as_numpy(faces).astype(np.int64)
        num_vertices, num_faces = len(self.target_neutral), len(self.faces)
        assert_shape(self.faces, ["F", 3], "faces", error=MeshFormatError, hint="triangle vertex indices")
        if num_faces == 0:
            raise MeshFormatError("faces: no triangles (F = 0)")
        if self.faces.min() < 0 or self.faces.max() >= num_vertices:
            raise MeshFormatError(f"faces index outside [0, {num_vertices}) of target_neutral")

        # G_j = E V_j^{-1}: [4, 3] weights of (v1, v2, v3, v4) in the gradient's columns.
        inverse = np.linalg.inv(_frames(self.target_neutral, self.faces, "target_neutral"))
        corner_weights = np.concatenate([-inverse.sum(axis=1, keepdims=True), inverse], axis=1)
        unknowns = np.concatenate([self.faces, num_vertices + np.arange(num_faces)[:, None]], axis=1)
        rows = np.broadcast_to(np.arange(3 * num_faces).reshape(num_faces, 1, 3), (num_faces, 4, 3))
        cols = np.broadcast_to(unknowns[:, :, None], (num_faces, 4, 3))
        system = sp.csr_matrix(
            (corner_weights.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * num_faces, num_vertices + num_faces)
        )

        # Translation: one free constant per connected component (isolated vertices are their own).
        adjacency = sp.coo_matrix(
            (np.ones(2 * num_faces), (self.faces[:, [0, 1]].ravel(), self.faces[:, [1, 2]].ravel())),
            shape=(num_vertices, num_vertices),
        )
        _, self.component = connected_components(adjacency, directed=False)
        _, anchors = np.unique(self.component, return_index=True)
        free = np.setdiff1d(np.arange(num_vertices + num_faces), anchors)
        self._system = system.tocsc()[:, free].tocsr()
        self._free = free
        self._solve = splu((self._system.T @ self._system).tocsc()).solve

    def __call__(self, source_neutral, source_deformed) -> np.ndarray:
        """Transfer ``source_neutral -> source_deformed`` onto the target.

        Args:
            source_neutral, source_deformed: ``[V, 3]`` meshes with the target's faces.

        Returns:
            ``[V, 3] float64`` deformed target, in the target's unit.

        Raises:
            MeshFormatError: wrong shapes or zero-area source triangles.
        """
        num_vertices = len(self.target_neutral)
        source_neutral = _check_vertices(source_neutral, "source_neutral", num_vertices)
        source_deformed = _check_vertices(source_deformed, "source_deformed", num_vertices)
        # S_j = V~_j V_j^{-1} (eq. 3); row k of S_j is the right-hand side of coordinate k.
        gradients = _frames(source_deformed, self.faces, "source_deformed") @ np.linalg.inv(
            _frames(source_neutral, self.faces, "source_neutral")
        )
        rhs = gradients.transpose(0, 2, 1).reshape(-1, 3)
        solution = np.zeros((num_vertices + len(self.faces), 3))
        solution[self._free] = self._solve(self._system.T @ rhs)
        deformed = solution[:num_vertices]

        displacement = np.zeros((self.component.max() + 1, 3))
        np.add.at(displacement, self.component, (source_deformed - source_neutral) - (deformed - self.target_neutral))
        displacement /= np.bincount(self.component)[:, None]
        return deformed + displacement[self.component]


def deformation_transfer(source_neutral, source_deformed, target_neutral, faces) -> np.ndarray:
    """Deformation transfer (Sumner & Popovic 2004) for meshes in full correspondence.

    Copies every triangle's deformation gradient (including the normal direction, through the
    fourth vertex) from the source to the target in a least-squares sense. Exact for a rigid
    source change on any target, and for an affine source change when the target is a scaled
    and translated copy of the source neutral. The target's factorisation is cached for the
    last few targets, so transferring many expressions to one target factorises once.

    Args:
        source_neutral: ``[V, 3]`` source rest shape (numpy or torch).
        source_deformed: ``[V, 3]`` source deformed shape (e.g. an expression).
        target_neutral: ``[V, 3]`` target rest shape, same vertex order.
        faces: ``[F, 3]`` int triangles shared by all three meshes.

    Returns:
        ``[V, 3] float64`` target deformed; each connected component's mean displacement
        equals the source's over the same vertices.

    Raises:
        MeshFormatError: shape mismatch, face index out of range, or zero-area triangles.
    """
    target_neutral = _check_vertices(target_neutral, "target_neutral")
    faces = _as_numpy(faces).astype(np.int64)
    digest = hashlib.sha1(target_neutral.tobytes() + faces.tobytes() + repr(faces.shape).encode()).hexdigest()
    solver = _solver_cache.pop(digest, None) or DeformationTransfer(target_neutral, faces)
    _solver_cache[digest] = solver
    while len(_solver_cache) > _SOLVER_CACHE_SIZE:
        _solver_cache.popitem(last=False)
    return solver(source_neutral, source_deformed)


def _check_vertices(vertices, name: str, num_vertices: int | None = None) -> np.ndarray:
    vertices = np.ascontiguousarray(_as_numpy(vertices), dtype=np.float64)
    assert_shape(vertices, ["V" if num_vertices is None else num_vertices, 3], name, error=MeshFormatError,
                 hint="" if num_vertices is None else "one vertex per target_neutral vertex")
    return vertices
