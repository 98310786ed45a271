"""Vertex normals and spherical-harmonics (SH) Lambertian shading.

The SH model is the 9-band (order 2) irradiance approximation of Ramamoorthi & Hanrahan 2001 as used
by MoFA (Tewari et al. 2017, eq. 5) and Deep3DFaceRecon (Deng et al. 2019): colour = albedo * shading,
``shading_c(n) = sum_k Y_k(n) gamma_{c,k}``. Constants, sign conventions and the ``[B, 27]`` layout
(``reshape(B, 3, 9)``: 9 coefficients for red, then green, then blue) match Deep3DFaceRecon_pytorch
``models/bfm.py`` ``SH`` and ``compute_color``. Its ``init_lit`` offset (0.8 ambient in each colour)
is :data:`SH_AMBIENT`; :func:`sh_shading` does not add it, callers that want "zero coefficients =
ambient light" add it themselves (as :class:`facegen.render.face.FaceRenderer` does).
"""
from __future__ import annotations

import math

import torch

from facegen.render.camera import RenderInputError
from facegen.shapes import assert_shape

# Lambertian kernel in SH (a_l = pi, 2 pi / 3 normalised as in Deep3DFaceRecon) and SH normalisation c_l.
SH_A = (math.pi, 2.0 * math.pi / math.sqrt(3.0), 2.0 * math.pi / math.sqrt(8.0))
SH_C = (1.0 / math.sqrt(4.0 * math.pi), math.sqrt(3.0) / math.sqrt(4.0 * math.pi),
        3.0 * math.sqrt(5.0) / math.sqrt(12.0 * math.pi))
SH_AMBIENT = 0.8    # Deep3DFaceRecon init_lit[0]: band-0 offset per colour channel


def ambient_sh_coeffs(batch_size: int = 1, ambient: float = SH_AMBIENT, dtype=torch.float32,
                      device=None) -> torch.Tensor:
    """``[B, 27]`` SH coefficients of uniform white light: band 0 = ``ambient`` for R, G and B."""
    coeffs = torch.zeros(batch_size, 3, 9, dtype=dtype, device=device)
    coeffs[:, :, 0] = ambient
    return coeffs.reshape(batch_size, 27)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``[B, V, 3]`` of ``vertices [B, V, 3]`` and ``faces [F, 3]``.

    Counter-clockwise faces (seen from outside) give outward normals. Isolated vertices get (0, 0, 0)
    normalised with eps. Differentiable (as PyTorch3D ``Meshes.verts_normals_packed``).

    Raises:
        RenderInputError: ``vertices`` is not ``[B, V, 3]`` or ``faces`` not ``[F, 3]``.
    """
    assert_shape(vertices, ["B", "V", 3], "vertices", error=RenderInputError)
    assert_shape(faces, ["F", 3], "faces", error=RenderInputError, hint="triangle vertex indices")
    faces = faces.long()
    v0, v1, v2 = (vertices[:, faces[:, i]] for i in range(3))
    face_normals = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)           # [B, F, 3], |n| = 2 area
    normals = torch.zeros_like(vertices)
    for i in range(3):
        normals = normals.index_add(1, faces[:, i], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 scaled SH basis values ``a_l c_l Y_lm(n)`` for unit normals ``[..., 3]`` -> ``[..., 9]``."""
    a, c = SH_A, SH_C
    nx, ny, nz = normals[..., 0], normals[..., 1], normals[..., 2]
    return torch.stack([
        a[0] * c[0] * torch.ones_like(nx),
        -a[1] * c[1] * ny,
        a[1] * c[1] * nz,
        -a[1] * c[1] * nx,
        a[2] * c[2] * nx * ny,
        -a[2] * c[2] * ny * nz,
        0.5 * a[2] * c[2] / math.sqrt(3.0) * (3.0 * nz ** 2 - 1.0),
        -a[2] * c[2] * nx * nz,
        0.5 * a[2] * c[2] * (nx ** 2 - ny ** 2),
    ], dim=-1)


def sh_shading(normals: torch.Tensor, sh_coeffs: torch.Tensor) -> torch.Tensor:
    """Per-pixel (or per-vertex) RGB irradiance from SH lighting.

    Args:
        normals: ``[B, ..., 3]`` unit normals in camera-aligned world space (y up, +z towards the camera),
            e.g. ``[B, H, W, 3]``.
        sh_coeffs: ``[B, 27]`` SH coefficients, 9 per colour channel (R then G then B).

    Returns:
        ``[B, ..., 3]`` shading; multiply by albedo for the Lambertian colour.

    Raises:
        RenderInputError: ``normals`` is not ``[B, ..., 3]``, or ``sh_coeffs`` not ``[B, 27]`` with ``B``
            matching ``normals``.
    """
    assert_shape(normals, ["B", *[None] * max(normals.dim() - 2, 0), 3], "normals", error=RenderInputError,
                 hint="unit normals [B, ..., 3]")
    b = normals.shape[0]
    assert_shape(sh_coeffs, [b, 27], "sh_coeffs", error=RenderInputError,
                 hint="9 SH bands x RGB per sample of normals")
    basis = sh_basis(normals)                                           # [B, ..., 9]
    gamma = sh_coeffs.reshape(b, 3, 9)
    flat = basis.reshape(b, -1, 9)
    out = torch.einsum("bnk,bck->bnc", flat, gamma)
    return out.reshape(*normals.shape[:-1], 3)
