"""Uniform Laplacian smoothing loss, batched over meshes that share one topology."""
from __future__ import annotations

import torch

from facegen.errors import MeshFormatError
from facegen.shapes import assert_shape


def uniform_laplacian_smoothing(verts: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Mean norm of the uniform Laplacian, as PyTorch3D ``mesh_laplacian_smoothing(method="uniform")``.

    ``(L v)_i = (1 / deg(i)) * sum_{j ~ i} v_j - v_i``; a vertex with no edge keeps only
    ``-v_i`` (PyTorch3D's ``laplacian`` leaves its off-diagonal row empty and its diagonal -1).
    The loss is ``||(L v)_i||_2`` averaged over the vertices of each mesh, then over meshes.

    Args:
        verts: ``[B, V, 3]`` float vertex positions (any unit; the loss has the same unit).
        edges: ``[E, 2]`` int64 unique undirected edges (e.g. :func:`facegen.geometry.unique_edges`),
            numpy or torch.

    Returns:
        Scalar tensor, differentiable w.r.t. ``verts``.

    Raises:
        MeshFormatError: ``verts`` is not ``[B, V, 3]`` or ``edges`` not ``[E, 2]``.
    """
    edges = torch.as_tensor(edges, dtype=torch.long, device=verts.device)
    assert_shape(verts, ["B", "V", 3], "verts", error=MeshFormatError)
    assert_shape(edges, ["E", 2], "edges", error=MeshFormatError, hint="undirected vertex index pairs")
    num_vertices = verts.shape[1]
    src = torch.cat([edges[:, 0], edges[:, 1]])
    dst = torch.cat([edges[:, 1], edges[:, 0]])
    degree = torch.bincount(src, minlength=num_vertices).to(verts.dtype)
    neighbour_sum = torch.zeros_like(verts).index_add_(1, src, verts[:, dst])
    # A vertex without edges has a zero neighbour sum, so clamping its degree to 1 leaves -v_i.
    laplacian = neighbour_sum / degree.clamp(min=1)[:, None] - verts
    return laplacian.norm(dim=-1).mean(dim=-1).mean()
