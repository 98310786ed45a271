"""Render a morphable face from its parameter vector: image, mask and 68 projected landmarks.

The image formation follows Deep3DFaceRecon (Deng et al. 2019, sec. 3.1; ``models/bfm.py``): shape and
albedo from the morphable model, rigid pose ``v' = R v + t`` with ``R = R_z R_y R_x`` (XYZ Euler angles,
radians, :func:`facegen.morphable.params.euler_to_matrix`), per-vertex Lambertian colour
``albedo * SH shading(normal')`` with the ``init_lit`` ambient offset (:data:`facegen.render.shading.SH_AMBIENT`)
added to the parameters' band-0 coefficients, then rasterised and interpolated per pixel (Gouraud) by
:mod:`facegen.render.rasterizer`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from facegen.morphable.params import ParamLayout, euler_to_matrix
from facegen.render.camera import (
    OrthographicCamera,
    PerspectiveCamera,
    RenderInputError,
    ndc_to_pixels,
)
from facegen.render.rasterizer import Fragments, interpolate, rasterize
from facegen.render.shading import ambient_sh_coeffs, sh_shading, vertex_normals


@dataclass
class FaceRendering:
    """Output of :class:`FaceRenderer`.

    Attributes:
        image: ``[B, 3, H, W]`` in [0, 1]; ``background`` outside the face.
        mask: ``[B, 1, H, W]`` float, 1 where the face is visible.
        landmarks: ``[B, 68, 2]`` pixel coordinates (u right, v down, pixel centres at integers).
        vertices: ``[B, V, 3]`` posed vertices, mm (world space).
        fragments: the rasteriser output.
    """

    image: torch.Tensor
    mask: torch.Tensor
    landmarks: torch.Tensor
    vertices: torch.Tensor
    fragments: Fragments


class FaceRenderer(torch.nn.Module):
    """Parameter vector -> image, mask and 68 landmarks of a morphable face.

    Args:
        model: a :class:`facegen.morphable.MorphableModel` (mm, with 68 landmark indices).
        image_size: output ``H`` (square) or ``(H, W)`` in pixels.
        camera: a :class:`PerspectiveCamera` or :class:`OrthographicCamera`; default: a 12-degree
            perspective camera framing the model's mean shape.
        background: RGB in [0, 1] outside the face.

    The layout of ``p [B, P]`` is :class:`facegen.morphable.params.ParamLayout`: identity ``K_id``,
    expression ``K_exp``, albedo ``K_alb``, 27 ``sh_coeffs`` (9 bands x RGB, offsets from ambient light
    0.8), rotation 3 (radians, XYZ Euler, about the model origin), translation 3 (mm).
    """

    def __init__(self, model, image_size: int | tuple[int, int] = 128,
                 camera: PerspectiveCamera | OrthographicCamera | None = None,
                 background: tuple[float, float, float] = (0.0, 0.0, 0.0)):
        super().__init__()
        if getattr(model, "landmark_indices", None) is None:
            raise RenderInputError(f"model {getattr(model, 'name', model)!r} has no 68 landmark indices")
        self.model = model
        self.image_size = image_size
        self.camera = camera or PerspectiveCamera.framing(model.mean_shape, fov_degrees=12.0, margin=1.1)
        self.background = background
        self.layout = ParamLayout.from_model(model)

    def zero_params(self, batch_size: int = 1) -> torch.Tensor:
        """``[B, P]`` zeros: mean face, neutral, mean albedo, ambient light, frontal, at the origin."""
        return self.model.mean_shape.new_zeros(batch_size, self.layout.dim)

    def posed_vertices(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Posed world vertices ``[B, V, 3]`` mm, ``v' = R v + t``, from ``layout.split(p)``."""
        shape = self.model.vertices(params["identity"], params["expression"])
        return shape @ euler_to_matrix(params["rotation"]).transpose(1, 2) + params["translation"].unsqueeze(1)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """World points ``[B, N, 3]`` mm -> pixel coordinates ``[B, N, 2]``."""
        return ndc_to_pixels(self.camera.transform(points)[..., :2], self.image_size)

    def forward(self, p: torch.Tensor) -> FaceRendering:
        """Render ``p [B, P]``; differentiable w.r.t. ``p`` (for fixed visibility).

        Raises:
            facegen.morphable.ModelLayoutError: ``p`` is not ``[B, layout.dim]``.
        """
        params = self.layout.split(p)
        verts = self.posed_vertices(params)
        faces = self.model.faces
        normals = vertex_normals(verts, faces)
        sh = params["sh_coeffs"] + ambient_sh_coeffs(p.shape[0], dtype=p.dtype, device=p.device)
        colour = self.model.albedo(params["albedo"]) * sh_shading(normals, sh)
        fragments = rasterize(self.camera.transform(verts), faces, self.image_size,
                              perspective_correct=self.camera.perspective_correct)
        mask = fragments.mask.unsqueeze(-1).to(p.dtype)
        background = p.new_tensor(self.background)
        image = interpolate(colour, faces, fragments) * mask + background * (1.0 - mask)
        landmarks = self.project(self.model.landmarks(verts))
        return FaceRendering(image=image.clamp(0.0, 1.0).permute(0, 3, 1, 2), mask=mask.permute(0, 3, 1, 2),
                             landmarks=landmarks, vertices=verts, fragments=fragments)
