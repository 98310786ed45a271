"""Mesh files: OBJ parsed from its ``v``/``f`` lines, other formats through trimesh.

OBJ files are read here rather than with trimesh because trimesh re-indexes the vertices of
OBJs that carry UV coordinates (the ICT-FaceKit OBJ of 26,719 vertices loads as 28,716 or
28,911 vertices), which breaks the vertex correspondence every face model relies on.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import trimesh

from facegen.errors import MeshFormatError
from facegen.shapes import assert_shape


class Mesh(NamedTuple):
    """A triangle mesh: ``vertices [V, 3] float64`` and ``faces [F, 3] int64`` (0-based)."""

    vertices: np.ndarray
    faces: np.ndarray


def load_mesh(path: str | os.PathLike, expected_vertices: int | None = None,
              expected_faces: np.ndarray | None = None) -> Mesh:
    """Read a triangle mesh, keeping the file's vertex order and count, checked against its own header.

    OBJ files are parsed from their ``v`` and ``f`` lines: extra vertex components (colours,
    ``w``) are ignored, face tokens may be ``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn`` with positive
    (1-based) or negative (relative) indices, and polygons are fan-triangulated
    ``(p0, p_k, p_k+1)``. Other formats (PLY, STL, OFF, ...) are read by ``trimesh`` with
    ``process=False`` so vertices are neither merged nor reordered. A PLY file must hold the vertices and
    faces its header declares (``element vertex N`` / ``element face M``): a file cut short is refused, not
    read as a smaller mesh. An OBJ has no header: a dataset catches a truncated one by its topology
    (``expected_faces``, the template's or the majority's).

    Args:
        path: mesh file.
        expected_vertices: if given, the number of vertices the file must have.
        expected_faces: if given, ``[F, 3]`` the triangles the file must have (the dataset's topology).

    Returns:
        ``Mesh(vertices [V, 3] float64, faces [F, 3] int64)`` in the file's units.

    Raises:
        MeshFormatError: the file is missing or unreadable, has no vertices, has NaN/inf
            coordinates, a face index outside ``[0, V)``, fewer vertices or faces than its header declares,
            not ``expected_vertices`` vertices, or faces other than ``expected_faces``; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise MeshFormatError(f"{path}: mesh file not found")
    if path.suffix.lower() == ".obj":
        vertices, faces = _read_obj(path)
    else:
        vertices, faces = _read_with_trimesh(path)
        if path.suffix.lower() == ".ply":
            _check_ply_counts(path, len(vertices), len(faces))
    if len(vertices) == 0:
        raise MeshFormatError(f"{path}: no vertices (expected lines 'v x y z')")
    if not np.isfinite(vertices).all():
        bad = np.flatnonzero(~np.isfinite(vertices).all(axis=1))
        raise MeshFormatError(f"{path}: {len(bad)} vertices have NaN/inf coordinates (first: vertex {bad[0]})")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise MeshFormatError(
            f"{path}: face index out of range [0, {len(vertices)}) (min {faces.min()}, max {faces.max()}, 0-based)"
        )
    if expected_vertices is not None and len(vertices) != expected_vertices:
        raise MeshFormatError(f"{path}: has {len(vertices)} vertices, expected {expected_vertices}")
    if expected_faces is not None:
        check_topology(path, faces, expected_faces)
    return Mesh(vertices, faces)


def check_topology(path: str | os.PathLike, faces: np.ndarray, expected: np.ndarray, source: str = "") -> None:
    """Refuse a mesh whose triangles ``faces [F, 3]`` differ from the dataset's ``expected [F', 3]``.

    Raises:
        MeshFormatError: ``<path>: has 5968 faces, expected 9976 (<source>)`` or, for as many faces, the first
            triangle that differs.
    """
    where = f" ({source})" if source else ""
    if faces.shape != expected.shape:
        raise MeshFormatError(f"{path}: has {len(faces)} faces, expected {len(expected)}{where}; "
                              "a truncated file or another topology")
    if not np.array_equal(faces, expected):
        row = int(np.flatnonzero((faces != expected).any(axis=1))[0])
        raise MeshFormatError(f"{path}: face {row} is {faces[row].tolist()}, expected {expected[row].tolist()}"
                              f"{where}: another topology")


def ply_header(path: str | os.PathLike) -> tuple[str, list[tuple[str, int]], int]:
    """``(format, [(element, count), ...], header length in bytes)`` of a PLY file.

    Raises:
        MeshFormatError: no ``ply`` magic or no ``end_header`` line in the first 64 kB.
    """
    with open(path, "rb") as handle:
        head = handle.read(65536)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise MeshFormatError(f"{path}: not a PLY file (no 'ply' magic or 'end_header' line)")
    newline = head.find(b"\n", end)
    length = len(head) if newline < 0 else newline + 1
    fmt, elements = "", []
    for line in head[:end].decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "format":
            fmt = parts[1]
        elif len(parts) == 3 and parts[0] == "element":
            try:
                elements.append((parts[1], int(parts[2])))
            except ValueError:
                raise MeshFormatError(f"{path}: bad header line {line!r}") from None
    return fmt, elements, length


def _check_ply_counts(path: Path, n_vertices: int, n_faces: int) -> None:
    """The loaded counts against the header (trimesh reads a PLY cut at a line boundary as a smaller mesh)."""
    fmt, elements, length = ply_header(path)
    declared = dict(elements)
    want_v, want_f = declared.get("vertex", 0), declared.get("face", 0)
    if fmt == "ascii":
        with open(path, "rb") as handle:
            handle.seek(length)
            lines = sum(1 for line in handle if line.strip())
        if lines < sum(count for _, count in elements):
            raise MeshFormatError(f"{path}: truncated: its header declares {want_v} vertices and {want_f} faces, "
                                  f"the file holds {lines} data lines")
    if n_vertices != want_v:
        raise MeshFormatError(f"{path}: read {n_vertices} vertices, its header declares {want_v} (truncated?)")
    if n_faces < want_f:  # polygons are split into triangles, so only fewer faces is wrong
        raise MeshFormatError(f"{path}: read {n_faces} faces, its header declares {want_f} (truncated?)")


def save_obj(path: str | os.PathLike, vertices, faces) -> None:
    """Write a triangle mesh as an OBJ file, atomically.

    The file is written to a temporary file in the same folder and moved into place with
    ``os.replace``, so readers never see a half-written mesh. Coordinates are written with
    9 significant digits (exact for float32; 1e-9 relative for float64).

    Args:
        path: destination ``.obj`` file; its folder is created if needed.
        vertices: ``[V, 3]`` array (numpy or torch), any unit.
        faces: ``[F, 3]`` 0-based vertex indices.

    Raises:
        MeshFormatError: ``vertices`` is not ``[V, 3]``, ``faces`` not ``[F, 3]``, or a face
            index is outside ``[0, V)``.
    """
    path = Path(path)
    vertices = _as_numpy(vertices).astype(np.float64, copy=False)
    faces = _as_numpy(faces).astype(np.int64, copy=False)
    assert_shape(vertices, ["V", 3], f"{path}: vertices", error=MeshFormatError)
    assert_shape(faces, ["F", 3], f"{path}: faces", error=MeshFormatError, hint="triangle vertex indices")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise MeshFormatError(f"{path}: face index out of range [0, {len(vertices)})")
    lines = [("v %.9g %.9g %.9g" % tuple(v)) for v in vertices.tolist()]
    lines += [("f %d %d %d" % tuple(f)) for f in (faces + 1).tolist()]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def unique_edges(faces) -> np.ndarray:
    """Undirected edges of a triangle mesh.

    Args:
        faces: ``[F, 3]`` int vertex indices (numpy or torch).

    Returns:
        ``[E, 2] int64``, each row ``(i, j)`` with ``i < j``, rows unique and sorted
        lexicographically.

    Raises:
        MeshFormatError: ``faces`` is not ``[F, 3]``.
    """
    faces = _as_numpy(faces).astype(np.int64, copy=False)
    assert_shape(faces, ["F", 3], "faces", error=MeshFormatError, hint="triangle vertex indices")
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.sort(edges, axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    return np.unique(edges, axis=0)


def _as_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``v`` and ``f`` lines; returns float64 vertices and fan-triangulated int64 faces."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:
        raise MeshFormatError(f"{path}: cannot read mesh file ({err})") from err

    vertex_lines, face_lines, vertices_before = [], [], []
    for line in lines:
        head = line[:2]
        if head == b"v " or head == b"v\t":
            vertex_lines.append(line[2:])
        elif head == b"f " or head == b"f\t":
            face_lines.append(line[2:])
            vertices_before.append(len(vertex_lines))

    vertices = _parse_vertex_lines(path, vertex_lines)
    if not face_lines:
        return vertices, np.zeros((0, 3), dtype=np.int64)

    tokens_per_line = [line.split() for line in face_lines]
    counts = np.fromiter((len(t) for t in tokens_per_line), dtype=np.int64, count=len(face_lines))
    if counts.min() < 3:
        bad = int(np.argmin(counts))
        raise MeshFormatError(f"{path}: face line {bad} has {counts[bad]} vertices, need at least 3")
    flat = [token.split(b"/", 1)[0] for tokens in tokens_per_line for token in tokens]
    try:
        corners = np.array(flat, dtype=np.int64)
    except ValueError as err:
        raise MeshFormatError(f"{path}: non-integer vertex index in an 'f' line ({err})") from err
    if (corners == 0).any():
        raise MeshFormatError(f"{path}: face index 0 (OBJ indices are 1-based or negative)")
    # Negative indices count back from the last vertex defined before the face line.
    before = np.repeat(np.asarray(vertices_before, dtype=np.int64), counts)
    corners = np.where(corners > 0, corners - 1, before + corners)

    # Fan triangulation: polygon p with n corners starting at s gives (s, s+k, s+k+1), k = 1..n-2.
    n_tris = counts - 2
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    first = np.repeat(starts, n_tris)
    k = np.arange(n_tris.sum()) - np.repeat(np.cumsum(n_tris) - n_tris, n_tris) + 1
    faces = np.stack([corners[first], corners[first + k], corners[first + k + 1]], axis=1)
    return vertices, faces


def _parse_vertex_lines(path: Path, vertex_lines: list[bytes]) -> np.ndarray:
    if not vertex_lines:
        return np.zeros((0, 3), dtype=np.float64)
    tokens = b" ".join(vertex_lines).split()
    width = len(vertex_lines[0].split())
    if len(tokens) == width * len(vertex_lines) and width >= 3:
        rows = None
    else:
        rows = [line.split() for line in vertex_lines]
        if min(len(r) for r in rows) < 3:
            raise MeshFormatError(f"{path}: a 'v' line has fewer than 3 coordinates")
    try:
        if rows is None:
            return np.array(tokens, dtype=np.float64).reshape(-1, width)[:, :3].copy()
        return np.array([r[:3] for r in rows], dtype=np.float64)
    except ValueError as err:
        raise MeshFormatError(f"{path}: non-numeric vertex coordinate in a 'v' line ({err})") from err


def _read_with_trimesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        mesh = trimesh.load(path, process=False, force="mesh")
    except Exception as err:  # trimesh raises many types for corrupt files
        raise MeshFormatError(f"{path}: cannot read mesh file ({type(err).__name__}: {err})") from err
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    return vertices, faces
