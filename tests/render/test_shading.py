"""SH shading: hand-computed values, Deep3DFaceRecon layout, gradients; vertex normals."""
from __future__ import annotations

import math

import pytest
import torch
import trimesh

from facegen.render import (
    RenderInputError,
    ambient_sh_coeffs,
    sh_shading,
    vertex_normals,
)


def test_band0_is_uniform_and_layout_is_rgb_major():
    normals = torch.nn.functional.normalize(torch.randn(1, 5, 3), dim=-1)
    coeffs = torch.zeros(1, 27)
    coeffs[0, 0], coeffs[0, 9], coeffs[0, 18] = 1.0, 0.5, 0.25           # band 0 of R, G, B
    out = sh_shading(normals, coeffs)
    a0c0 = math.pi / math.sqrt(4 * math.pi)
    torch.testing.assert_close(out[0], torch.tensor([1.0, 0.5, 0.25]).expand(5, 3) * a0c0)
    torch.testing.assert_close(sh_shading(normals, ambient_sh_coeffs())[0], torch.full((5, 3), 0.8 * a0c0))


def test_band1_z_term_follows_the_normal():
    normals = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]])
    coeffs = torch.zeros(1, 27)
    coeffs[0, 2] = 1.0                                                  # Y_10 ~ n_z, red only
    out = sh_shading(normals, coeffs)[0]
    a1c1 = 2 * math.pi / math.sqrt(3) * math.sqrt(3) / math.sqrt(4 * math.pi)
    torch.testing.assert_close(out[:, 0], torch.tensor([a1c1, -a1c1, 0.0]))
    assert torch.all(out[:, 1:] == 0)


def test_sh_gradcheck():
    torch.manual_seed(0)
    normals = torch.nn.functional.normalize(torch.randn(2, 3, 4, 3, dtype=torch.float64), dim=-1)
    coeffs = torch.randn(2, 27, dtype=torch.float64)
    assert torch.autograd.gradcheck(sh_shading, (normals.requires_grad_(), coeffs.requires_grad_()))


def test_vertex_normals_of_sphere_point_outwards():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    verts = torch.tensor(sphere.vertices, dtype=torch.float32)[None]
    normals = vertex_normals(verts, torch.tensor(sphere.faces))
    cos = (normals[0] * torch.nn.functional.normalize(verts[0], dim=-1)).sum(-1)
    assert cos.min() > 0.99


def test_bad_sh_shape_raises():
    with pytest.raises(RenderInputError, match=r"sh_coeffs: expected shape \[1, 27\], got \[1, 9\]"):
        sh_shading(torch.zeros(1, 4, 3), torch.zeros(1, 9))
