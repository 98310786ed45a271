"""SpiralNet++ spiral sequences computed from triangle topology alone.

Reference: Gong et al., "SpiralNet++: A Fast and Highly Efficient Mesh Convolution Operator",
ICCV-W 2019; code sw-gong/spiralnet_plus ``utils/utils.py: preprocess_spiral`` and
``utils/generate_spiral_seq.py: extract_spirals``. The reference walks OpenMesh's half-edge
circulators; here the ordered one-rings are built directly from the faces, which also works on
boundaries and on non-manifold meshes (OpenMesh drops "complex" faces instead).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from scipy.spatial import cKDTree

from facegen.errors import MeshFormatError
from facegen.shapes import assert_shape


def one_rings(faces, num_vertices: int) -> list[list[int]]:
    """Neighbours of every vertex in clockwise cyclic order (OpenMesh ``vv`` order).

    Faces are taken as counter-clockwise seen from outside. A face ``(v, p, q)`` places ``p``
    right after ``q`` in clockwise order around ``v``. A boundary vertex's ring starts at the
    neighbour across its boundary edge that has no face on its left (OpenMesh's outgoing boundary
    half-edge) and runs clockwise to the other boundary neighbour; an interior ring starts at
    ``p`` of the vertex's first face ``(v, p, q)`` in face order. Where the faces around a vertex
    form several fans (non-manifold vertex or edge), the fans follow each other.

    Args:
        faces: ``[F, 3]`` int vertex indices.
        num_vertices: ``V``; vertices in no face get an empty ring.

    Returns:
        ``V`` lists of neighbour indices, each neighbour once.
    """
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])]
    # links[v][q] = [p, ...]: clockwise successors of q around v, in face order.
    links: list[dict[int, list[int]]] = [defaultdict(list) for _ in range(num_vertices)]
    first_p: list[int | None] = [None] * num_vertices
    for a, b, c in faces.tolist():
        for v, p, q in ((a, b, c), (b, c, a), (c, a, b)):
            links[v][q].append(p)
            if first_p[v] is None:
                first_p[v] = p
    rings = []
    for v in range(num_vertices):
        succ = links[v]
        has_predecessor = {p for ps in succ.values() for p in ps}
        # A boundary fan starts at a neighbour with a face on its right (a key) but none on its left.
        boundary_starts = [q for q in succ if q not in has_predecessor]
        neighbours = dict.fromkeys(u for q, ps in succ.items() for u in (q, *ps))
        ring, seen = [], set()
        for start in [*boundary_starts, first_p[v], *neighbours]:
            current = start
            while current is not None and current not in seen:
                seen.add(current)
                ring.append(current)
                current = next((p for p in succ.get(current, ()) if p not in seen), None)
        rings.append(ring)
    return rings


def _next_ring(rings: list[list[int]], last_ring: list[int], used: set[int]) -> list[int]:
    """Vertices adjacent to ``last_ring`` and not in ``used``, in spiral order.

    For each vertex of ``last_ring`` its one-ring is read cyclically starting at its first
    neighbour that lies in ``last_ring`` (as in the reference ``_next_ring``).
    """
    last = set(last_ring)
    result, taken = [], set()
    for vertex in last_ring:
        ring = rings[vertex]
        start = next((k for k, u in enumerate(ring) if u in last), 0)
        for u in ring[start:] + ring[:start]:
            if u not in last and u not in used and u not in taken:
                taken.add(u)
                result.append(u)
    return result


def spiral_indices(faces, num_vertices: int, seq_length: int = 9, dilation: int = 1,
                   vertices=None) -> torch.Tensor:
    """SpiralNet++ spiral of every vertex: itself, its one-ring clockwise, then the next rings.

    Matches ``extract_spirals`` of sw-gong/spiralnet_plus: rings are added while the spiral
    plus the next ring is shorter than ``seq_length * dilation``, then the next ring is
    appended and the sequence cut to ``seq_length * dilation`` and subsampled ``[::dilation]``.
    When the rings run out first (a component with too few vertices), the reference replaces
    the spiral by the ``seq_length * dilation`` nearest vertices in space (KD-tree); that is
    done here when ``vertices`` is given. Without ``vertices`` (topology only) the spiral keeps
    the whole component in ring order and is padded by repeating the vertex itself, which is
    also the padding when the mesh has fewer than ``seq_length * dilation`` vertices.

    The starting neighbour of an interior vertex's ring (arbitrary in OpenMesh, which depends
    on its half-edge construction order) is given by :func:`one_rings`.

    Args:
        faces: ``[F, 3]`` int triangles (numpy or torch), counter-clockwise from outside.
        num_vertices: ``V``.
        seq_length: spiral length (SpiralNet++ default 9).
        dilation: take every ``dilation``-th of the first ``seq_length * dilation`` entries.
        vertices: optional ``[V, 3]`` positions, used only for the reference's KD-tree padding.

    Returns:
        ``torch.LongTensor [V, seq_length]``; entry 0 of each row is the vertex itself.

    Raises:
        MeshFormatError: ``faces`` is not ``[F, 3]`` or ``vertices`` not ``[V, 3]``.
    """
    if hasattr(faces, "detach"):
        faces = faces.detach().cpu().numpy()
    assert_shape(np.asarray(faces), ["F", 3], "faces", error=MeshFormatError, hint="triangle vertex indices")
    if vertices is not None:
        assert_shape(np.asarray(vertices), [num_vertices, 3], "vertices", error=MeshFormatError,
                     hint="one position per vertex (num_vertices)")
    length = seq_length * dilation
    rings = one_rings(faces, num_vertices)
    tree = cKDTree(np.asarray(vertices, dtype=np.float64)) if vertices is not None else None
    spirals = np.empty((num_vertices, seq_length), dtype=np.int64)
    for v in range(num_vertices):
        spiral = [v]
        last_ring = rings[v]
        next_ring = _next_ring(rings, last_ring, {v})
        spiral.extend(last_ring)
        while len(spiral) + len(next_ring) < length and next_ring:
            last_ring = next_ring
            next_ring = _next_ring(rings, last_ring, set(spiral))
            spiral.extend(last_ring)
        if next_ring:
            spiral.extend(next_ring)
        elif tree is not None:
            _, nearest = tree.query(tree.data[v], k=min(length, num_vertices))
            spiral = np.atleast_1d(nearest).tolist()
        spiral = (spiral + [v] * length)[:length]
        spirals[v] = spiral[::dilation]
    return torch.from_numpy(spirals)
