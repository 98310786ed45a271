"""CoMA-style mesh hierarchy: vertex-subset decimation, barycentric up-sampling, spirals per level.

Reference: Ranjan et al., "Generating 3D faces using Convolutional Mesh Autoencoders", ECCV 2018
(``anuragranj/coma`` ``mesh_sampling.generate_transform_matrices``), as used by SpiralNet++.
The reference's QSlim keeps one endpoint of every collapsed edge, so the down-sampling matrix
selects vertices; here pymeshlab's quadric edge collapse with ``optimalplacement=False`` does
the same, and its target face count is adjusted until the kept vertex count equals the
reference's ``ceil(V_i / factor)`` (5,023 -> 1,256 -> 314 -> 79 -> 20 on the CoMA template).
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from facegen.errors import MeshFormatError
from facegen.geometry.io import _as_numpy
from facegen.geometry.spiral import spiral_indices as compute_spiral_indices
from facegen.shapes import assert_shape

FORMAT_VERSION = 1
_MAX_DECIMATION_TRIES = 12


@dataclass
class MeshHierarchy:
    """Meshes and sampling operators of a CoMA hierarchy (level 0 = template).

    Attributes:
        vertices: ``L + 1`` arrays ``[V_i, 3] float64`` (template units); level ``i + 1`` is a
            subset of level ``i``'s vertices.
        faces: ``L + 1`` arrays ``[F_i, 3] int64``.
        down_transform: ``L`` sparse COO ``float32 [V_{i+1}, V_i]``, one 1 per row selecting
            the kept vertex (``x_{i+1} = D_i @ x_i``).
        up_transform: ``L`` sparse COO ``float32 [V_i, V_{i+1}]``, 3 entries per row: the
            barycentric coordinates of the fine vertex's closest point on the coarse surface;
            a kept vertex has weight exactly 1 on itself, so ``U_i @ D_i`` reproduces kept
            vertices exactly.
        spiral_indices: ``L + 1`` LongTensors ``[V_i, seq_length]``.
    """

    vertices: list[np.ndarray]
    faces: list[np.ndarray]
    down_transform: list[torch.Tensor]
    up_transform: list[torch.Tensor]
    spiral_indices: list[torch.Tensor]


def build_mesh_hierarchy(vertices, faces, factors=(4, 4, 4, 4), seq_length: int = 9, dilation: int = 1,
                         cache_dir: Path | None = None) -> MeshHierarchy:
    """Decimate a template ``len(factors)`` times and build down/up transforms and spirals.

    Level ``i + 1`` keeps ``ceil(V_i / factors[i])`` of level ``i``'s vertices (quadric error
    edge collapse, each collapse keeping an endpoint). Results are cached in
    ``cache_dir/mesh_hierarchy_<sha1>.npz``, keyed by the template's vertices and faces,
    ``factors``, ``seq_length``, ``dilation`` and the cache format version.

    Args:
        vertices: ``[V, 3]`` template positions (any unit; numpy or torch).
        faces: ``[F, 3]`` int triangles.
        factors: down-sampling factor per level.
        seq_length, dilation: spiral parameters (see :func:`facegen.geometry.spiral_indices`).
        cache_dir: folder for the ``.npz`` cache; ``None`` disables caching.

    Returns:
        :class:`MeshHierarchy` with ``len(factors) + 1`` levels.

    Raises:
        MeshFormatError: ``vertices``/``faces`` have the wrong shape, a face index is out of
            range, or a level would have fewer than 4 vertices.
    """
    vertices = _as_numpy(vertices).astype(np.float64)
    faces = _as_numpy(faces).astype(np.int64)
    assert_shape(vertices, ["V", 3], "template vertices", error=MeshFormatError)
    assert_shape(faces, ["F", 3], "template faces", error=MeshFormatError, hint="triangle vertex indices")
    if len(faces) == 0:
        raise MeshFormatError("template faces: no triangles (F = 0)")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshFormatError(f"template faces index outside [0, {len(vertices)})")
    factors = tuple(int(f) for f in factors)

    cache_file = None
    if cache_dir is not None:
        key = _cache_key(vertices, faces, factors, seq_length, dilation)
        cache_file = Path(cache_dir) / f"mesh_hierarchy_{key}.npz"
        if cache_file.is_file():
            return _load(cache_file)

    level_vertices, level_faces, kept, up = [vertices], [faces], [], []
    for level, factor in enumerate(factors):
        target = math.ceil(len(level_vertices[-1]) / factor)
        if target < 4:
            raise MeshFormatError(
                f"template of {len(vertices)} vertices is too small for factors {factors}: "
                f"level {level + 1} would keep {target} vertices (need >= 4)"
            )
        coarse_vertices, coarse_faces, kept_index = decimate(level_vertices[-1], level_faces[-1], target)
        up.append(_barycentric_up_weights(level_vertices[-1], coarse_vertices, coarse_faces, kept_index))
        level_vertices.append(coarse_vertices)
        level_faces.append(coarse_faces)
        kept.append(kept_index)
    spirals = [
        compute_spiral_indices(f, len(v), seq_length=seq_length, dilation=dilation, vertices=v)
        for v, f in zip(level_vertices, level_faces)
    ]
    arrays = {"num_levels": np.array(len(factors))}
    for i, (v, f, s) in enumerate(zip(level_vertices, level_faces, spirals)):
        arrays[f"vertices_{i}"], arrays[f"faces_{i}"], arrays[f"spirals_{i}"] = v, f, s.numpy()
    for i, (k, (cols, weights)) in enumerate(zip(kept, up)):
        arrays[f"kept_{i}"], arrays[f"up_cols_{i}"], arrays[f"up_weights_{i}"] = k, cols, weights
    if cache_file is not None:
        _save_atomic(cache_file, arrays)
    return _from_arrays(arrays)


def decimate(vertices: np.ndarray, faces: np.ndarray, num_vertices: int):
    """Quadric edge-collapse decimation that keeps a subset of the vertices.

    pymeshlab ``meshing_decimation_quadric_edge_collapse(optimalplacement=False)`` starting
    from ``F * num_vertices / V`` target faces (``F / 4`` for factor 4); the target is
    corrected (each interior collapse removes two faces and one vertex) until exactly
    ``num_vertices`` remain, or the closest count after 12 tries.

    Args:
        vertices: ``[V, 3] float64``; faces: ``[F, 3] int64``.
        num_vertices: wanted number of kept vertices.

    Returns:
        ``(coarse_vertices [V', 3], coarse_faces [F', 3], kept_index [V'])`` with
        ``coarse_vertices == vertices[kept_index]`` exactly.

    Raises:
        RuntimeError: pymeshlab moved a vertex (the output is not a vertex subset).
    """
    import pymeshlab  # optional at run time: heavy (Qt libraries), only the decimation needs it

    target_faces = max(1, math.ceil(len(faces) * num_vertices / len(vertices)))
    best = None
    for _ in range(_MAX_DECIMATION_TRIES):
        meshset = pymeshlab.MeshSet()
        meshset.add_mesh(pymeshlab.Mesh(vertices, faces.astype(np.int32)))
        meshset.meshing_decimation_quadric_edge_collapse(
            targetfacenum=int(target_faces), optimalplacement=False, autoclean=True
        )
        meshset.meshing_remove_unreferenced_vertices()
        mesh = meshset.current_mesh()
        result = (mesh.vertex_matrix().astype(np.float64), mesh.face_matrix().astype(np.int64))
        surplus = len(result[0]) - num_vertices
        if best is None or abs(surplus) < abs(len(best[0]) - num_vertices):
            best = result
        if surplus == 0:
            break
        target_faces = max(1, target_faces - (2 * surplus if abs(surplus) > 1 else surplus))
    coarse_vertices, coarse_faces = best
    distance, kept_index = cKDTree(vertices).query(coarse_vertices)
    if distance.max() != 0.0:
        raise RuntimeError(f"decimation moved a vertex by {distance.max():.3g}; expected a vertex subset")
    return vertices[kept_index], coarse_faces, kept_index.astype(np.int64)


def _barycentric_up_weights(fine_vertices, coarse_vertices, coarse_faces, kept_index):
    """Per fine vertex: 3 coarse vertex indices and barycentric weights of its closest surface point."""
    triangle, closest = closest_surface_points(fine_vertices, coarse_vertices, coarse_faces)
    cols = coarse_faces[triangle]
    weights = trimesh.triangles.points_to_barycentric(coarse_vertices[cols], closest)
    weights = np.clip(np.nan_to_num(weights, nan=1.0 / 3.0), 0.0, None)  # nan: zero-area triangle
    weights /= weights.sum(axis=1, keepdims=True)
    # Kept vertices map to themselves exactly: a face containing the vertex, weight one-hot on it.
    face_of_vertex = np.empty(len(coarse_vertices), dtype=np.int64)
    face_of_vertex[coarse_faces.ravel()] = np.repeat(np.arange(len(coarse_faces)), 3)
    own_faces = coarse_faces[face_of_vertex]
    cols[kept_index] = own_faces
    weights[kept_index] = (own_faces == np.arange(len(coarse_vertices))[:, None]).astype(np.float64)
    return cols, weights


def closest_surface_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, chunk: int = 2048):
    """Exact closest point on a triangle surface for each query point (no spatial-index package).

    A triangle ``T`` with centroid ``c_T`` and circumscribing radius ``r_T`` (largest
    centroid-corner distance) can only beat the nearest mesh vertex, at distance ``d``, if
    ``|p - c_T| - r_T <= d``; those candidates are found with a KD-tree over centroids and
    measured exactly with ``trimesh.triangles.closest_point``.

    Args:
        points: ``[P, 3]``; vertices: ``[V, 3]``; faces: ``[F, 3]`` int64.
        chunk: query points processed at once (bounds memory).

    Returns:
        ``(triangle [P] int64, closest [P, 3] float64)``.
    """
    corners = vertices[faces]
    centroids = corners.mean(axis=1)
    radii = np.linalg.norm(corners - centroids[:, None], axis=2).max(axis=1)
    vertex_distance, _ = cKDTree(vertices).query(points)
    centroid_tree = cKDTree(centroids)
    triangle = np.empty(len(points), dtype=np.int64)
    closest = np.empty((len(points), 3))
    for start in range(0, len(points), chunk):
        block = slice(start, start + chunk)
        bound = vertex_distance[block] + radii.max() + 1e-12
        candidates = centroid_tree.query_ball_point(points[block], bound)
        point_id = np.repeat(np.arange(len(candidates)), [len(c) for c in candidates])
        face_id = np.concatenate([np.asarray(c, dtype=np.int64) for c in candidates])
        offset = np.linalg.norm(points[block][point_id] - centroids[face_id], axis=1) - radii[face_id]
        keep = offset <= vertex_distance[block][point_id] + 1e-12
        point_id, face_id = point_id[keep], face_id[keep]
        nearest = trimesh.triangles.closest_point(corners[face_id], points[block][point_id])
        distance = np.linalg.norm(nearest - points[block][point_id], axis=1)
        order = np.lexsort((distance, point_id))  # per point, the smallest distance first
        first = order[np.r_[True, point_id[order][1:] != point_id[order][:-1]]]
        triangle[block] = face_id[first]
        closest[block] = nearest[first]
    return triangle, closest


def _from_arrays(arrays) -> MeshHierarchy:
    levels = int(arrays["num_levels"])
    vertices = [np.asarray(arrays[f"vertices_{i}"]) for i in range(levels + 1)]
    faces = [np.asarray(arrays[f"faces_{i}"]) for i in range(levels + 1)]
    down, up = [], []
    for i in range(levels):
        n_fine, n_coarse = len(vertices[i]), len(vertices[i + 1])
        kept = torch.as_tensor(arrays[f"kept_{i}"])
        down.append(_sparse(torch.arange(n_coarse), kept, torch.ones(n_coarse), (n_coarse, n_fine)))
        rows = torch.arange(n_fine).repeat_interleave(3)
        cols = torch.as_tensor(arrays[f"up_cols_{i}"]).reshape(-1)
        weights = torch.as_tensor(arrays[f"up_weights_{i}"], dtype=torch.float32).reshape(-1)
        up.append(_sparse(rows, cols, weights, (n_fine, n_coarse)))
    spirals = [torch.as_tensor(arrays[f"spirals_{i}"]).long() for i in range(levels + 1)]
    return MeshHierarchy(vertices, faces, down, up, spirals)


def _sparse(rows, cols, values, shape) -> torch.Tensor:
    indices = torch.stack([rows, cols])
    return torch.sparse_coo_tensor(indices, values, shape, check_invariants=True).coalesce()


def _load(path: Path) -> MeshHierarchy:
    with np.load(path) as data:
        return _from_arrays({key: data[key] for key in data.files})


def _save_atomic(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _cache_key(vertices, faces, factors, seq_length, dilation) -> str:
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(vertices, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
    digest.update(repr((factors, int(seq_length), int(dilation), FORMAT_VERSION)).encode())
    return digest.hexdigest()

