"""Uniform Laplacian smoothing equals PyTorch3D's formula, computed here with an explicit loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.errors import MeshFormatError
from facegen.geometry import uniform_laplacian_smoothing, unique_edges


def reference_loss(verts: np.ndarray, edges: np.ndarray) -> float:
    """PyTorch3D uniform smoothing written out: L[i, j] = 1/deg(i), L[i, i] = -1, norm, mean, mean."""
    batch, num_vertices, _ = verts.shape
    neighbours = {i: [] for i in range(num_vertices)}
    for i, j in edges:
        neighbours[i].append(j)
        neighbours[j].append(i)
    per_mesh = []
    for b in range(batch):
        norms = []
        for i in range(num_vertices):
            lap = -verts[b, i]
            if neighbours[i]:
                lap = lap + sum(verts[b, j] for j in neighbours[i]) / len(neighbours[i])
            norms.append(np.linalg.norm(lap))
        per_mesh.append(np.mean(norms))
    return float(np.mean(per_mesh))


def test_matches_explicit_formula_with_an_isolated_vertex(icosphere):
    vertices, faces = icosphere
    rng = np.random.default_rng(0)
    verts = np.concatenate([vertices[None].repeat(3, 0), np.zeros((3, 1, 3))], axis=1)  # vertex 162: no edges
    verts = verts + rng.normal(scale=0.05, size=verts.shape)
    edges = unique_edges(faces)
    loss = uniform_laplacian_smoothing(torch.tensor(verts), torch.as_tensor(edges))
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(reference_loss(verts, edges), rel=1e-10)


def test_hand_computed_triangle():
    # Triangle: each vertex's neighbour mean minus itself; norms 1.5*|v - centroid|.
    verts = torch.tensor([[[0.0, 0, 0], [3.0, 0, 0], [0.0, 3, 0]]])
    edges = torch.tensor([[0, 1], [0, 2], [1, 2]])
    centroid = verts[0].mean(0)
    expected = (1.5 * (verts[0] - centroid).norm(dim=1)).mean()
    assert torch.allclose(uniform_laplacian_smoothing(verts, edges), expected)


def test_smoothing_gradient_reduces_the_loss(icosphere):
    vertices, faces = icosphere
    edges = torch.as_tensor(unique_edges(faces))
    noise = 0.05 * torch.randn(162, 3, generator=torch.Generator().manual_seed(0))
    verts = (torch.tensor(vertices, dtype=torch.float32) + noise)[None].requires_grad_(True)
    optimiser = torch.optim.SGD([verts], lr=0.5)
    losses = []
    for _ in range(20):
        loss = uniform_laplacian_smoothing(verts, edges)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:]))


def test_bad_shapes_raise():
    with pytest.raises(MeshFormatError, match=r"verts: expected shape \[B, V, 3\], got \[4, 3\]"):
        uniform_laplacian_smoothing(torch.zeros(4, 3), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(MeshFormatError, match=r"edges: expected shape \[E, 2\], got \[3\]"):
        uniform_laplacian_smoothing(torch.zeros(1, 4, 3), torch.zeros(3, dtype=torch.long))
