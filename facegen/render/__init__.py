"""Differentiable rendering in plain PyTorch: cameras, hard z-buffer rasteriser, SH shading, pictures.

Conventions (see :mod:`facegen.render.camera`): meshes in mm, y up, faces looking towards +z; cameras
look along -z; NDC x right, y up, z = depth in mm; pixel coordinates u right, v down, centres at integers.
"""
from facegen.render.camera import (
    OrthographicCamera,
    PerspectiveCamera,
    RenderInputError,
    ndc_to_pixels,
    pixels_to_ndc,
)
from facegen.render.face import FaceRenderer, FaceRendering
from facegen.render.fitting import FitConfig, FitResult, fit_face
from facegen.render.pictures import render_heatmap, render_shaded
from facegen.render.rasterizer import Fragments, interpolate, rasterize
from facegen.render.shading import (
    SH_AMBIENT,
    ambient_sh_coeffs,
    sh_basis,
    sh_shading,
    vertex_normals,
)

__all__ = [
    "FaceRenderer",
    "FaceRendering",
    "FitConfig",
    "FitResult",
    "fit_face",
    "Fragments",
    "OrthographicCamera",
    "PerspectiveCamera",
    "RenderInputError",
    "SH_AMBIENT",
    "ambient_sh_coeffs",
    "interpolate",
    "ndc_to_pixels",
    "pixels_to_ndc",
    "rasterize",
    "render_heatmap",
    "render_shaded",
    "sh_basis",
    "sh_shading",
    "vertex_normals",
]
