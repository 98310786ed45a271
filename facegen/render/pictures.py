"""Pictures of meshes for logs and papers: shaded renders and per-vertex error heat maps.

The camera is framed automatically on the mesh's bounding box (after the ``view`` rotation) and looks
along -z, so a facegen face (mm, y up, looking towards +z) is seen from the front with ``view="front"``.
Images are rendered at twice the size and box-filtered down (anti-aliasing); background is white.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from facegen.render.camera import PerspectiveCamera, RenderInputError
from facegen.render.rasterizer import interpolate, rasterize
from facegen.render.shading import vertex_normals
from facegen.shapes import assert_shape

# Yaw (degrees, about the vertical axis through the mesh centre) of each named view.
VIEWS = {"front": 0.0, "three_quarter": 35.0, "left": 90.0, "right": -90.0}
_LIGHT = (-0.35, 0.45, 0.82)     # headlight from the upper left, camera space
_AMBIENT, _DIFFUSE = 0.35, 0.65
_SUPERSAMPLE = 2


def _as_mesh(vertices, faces) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.as_tensor(np.asarray(vertices, dtype=np.float32) if not torch.is_tensor(vertices) else vertices)
    f = torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces)
    assert_shape(v, ["V", 3], "vertices", error=RenderInputError, hint="mm")
    assert_shape(f, ["F", 3], "faces", error=RenderInputError, hint="triangle vertex indices")
    if not torch.isfinite(v).all():
        raise RenderInputError("vertices contain NaN or inf")
    return v.detach().float().cpu(), f.detach().long().cpu()


def _rotate_view(v: torch.Tensor, view: str) -> torch.Tensor:
    if view not in VIEWS:
        raise RenderInputError(f"unknown view {view!r}; expected one of {sorted(VIEWS)}")
    yaw = math.radians(VIEWS[view])
    center = 0.5 * (v.min(0).values + v.max(0).values)
    c, s = math.cos(yaw), math.sin(yaw)
    rot = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return (v - center) @ rot.T + center


def _render(vertices, faces, colors: torch.Tensor, size: int, view: str) -> np.ndarray:
    """Headlight-shaded render of per-vertex ``colors [V, 3]`` in [0, 1] -> uint8 ``[size, size, 3]``."""
    v, f = _as_mesh(vertices, faces)
    if size <= 0:
        raise RenderInputError(f"size {size} must be a positive number of pixels")
    v = _rotate_view(v, view)[None]
    camera = PerspectiveCamera.framing(v[0], fov_degrees=15.0, margin=1.08)
    big = size * _SUPERSAMPLE
    fragments = rasterize(camera.transform(v), f, big, perspective_correct=True)
    normals = torch.nn.functional.normalize(interpolate(vertex_normals(v, f), f, fragments), dim=-1, eps=1e-12)
    # Two-sided lighting: a normal pointing away from the camera belongs to a surface seen from behind.
    normals = torch.where(normals[..., 2:3] < 0, -normals, normals)
    light = torch.nn.functional.normalize(torch.tensor(_LIGHT), dim=0)
    shade = _AMBIENT + _DIFFUSE * (normals @ light).clamp(min=0.0)
    rgb = interpolate(colors[None].float(), f, fragments) * shade.unsqueeze(-1)
    mask = fragments.mask.unsqueeze(-1)
    rgb = torch.where(mask, rgb, torch.ones_like(rgb))[0]
    rgb = torch.nn.functional.avg_pool2d(rgb.permute(2, 0, 1)[None], _SUPERSAMPLE)[0].permute(1, 2, 0)
    return (rgb.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()


def render_shaded(vertices, faces, size: int = 256, view: str = "front") -> np.ndarray:
    """Grey headlight-shaded picture of a mesh.

    Args:
        vertices: ``[V, 3]`` mm (numpy or torch), y up, face looking towards +z.
        faces: ``[F, 3]`` int triangles.
        size: output height and width in pixels.
        view: one of :data:`VIEWS` (yaw of the camera around the mesh).

    Returns:
        ``np.uint8 [size, size, 3]``.

    Raises:
        RenderInputError: bad shapes, NaN vertices, unknown view.
    """
    v, _ = _as_mesh(vertices, faces)
    colors = torch.full((v.shape[0], 3), 0.82)
    return _render(vertices, faces, colors, size, view)


def _font(px: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=px)
    except TypeError:   # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _colour_bar(height: int, vmax: float, cmap_name: str, unit: str) -> np.ndarray:
    """A vertical colour bar with 0, vmax/2 and vmax labels, uint8 ``[height, width, 3]``."""
    font_px = max(8, height // 18)
    width = max(48, int(font_px * 5.5))
    panel = Image.new("RGB", (width, height), (255, 255, 255))
    top, bottom = font_px, height - font_px
    bar_w = max(6, width // 5)
    ramp = np.linspace(1.0, 0.0, max(bottom - top, 1))
    lut = (colormaps[cmap_name](ramp)[:, :3] * 255).astype(np.uint8)
    bar = np.repeat(lut[:, None, :], bar_w, axis=1)
    panel.paste(Image.fromarray(bar), (4, top))
    draw = ImageDraw.Draw(panel)
    font = _font(font_px)
    for frac in (0.0, 0.5, 1.0):
        y = bottom - frac * (bottom - top)
        label = f"{frac * vmax:.3g}" + (f" {unit}" if frac == 1.0 else "")
        draw.line([(4 + bar_w, y), (7 + bar_w, y)], fill=(0, 0, 0))
        draw.text((10 + bar_w, y), label, fill=(0, 0, 0), font=font, anchor="lm")
    return np.asarray(panel)


def render_heatmap(vertices, faces, values, vmax: float, size: int = 256, view: str = "front",
                   cmap: str = "viridis", unit: str = "mm") -> np.ndarray:
    """A mesh coloured by a per-vertex scalar (e.g. reconstruction error in mm), with a colour bar.

    Values are clipped to ``[0, vmax]`` and mapped through a perceptually uniform matplotlib colormap,
    then shaded with a headlight so the shape stays readable. The colour bar (0, vmax/2, vmax labelled)
    is drawn with PIL to the right of the render.

    Args:
        vertices: ``[V, 3]`` mm, y up, face looking towards +z.
        faces: ``[F, 3]`` int triangles.
        values: ``[V]`` per-vertex scalar, in ``unit``.
        vmax: value at the top of the colour bar (> 0).
        size: render height and width in pixels; the colour bar adds ``max(48, 5.5 * size / 18)`` columns.
        view: one of :data:`VIEWS`.
        cmap: matplotlib colormap name.
        unit: unit label of the colour bar.

    Returns:
        ``np.uint8 [size, size + bar_width, 3]``.

    Raises:
        RenderInputError: bad shapes, ``values`` not ``[V]``, ``vmax <= 0``, unknown view or colormap.
    """
    v, _ = _as_mesh(vertices, faces)
    vals = torch.as_tensor(np.asarray(values, dtype=np.float32) if not torch.is_tensor(values) else values)
    vals = vals.detach().float().cpu()
    assert_shape(vals, [v.shape[0]], "values", error=RenderInputError, hint="one value per vertex")
    if not vmax > 0:
        raise RenderInputError(f"vmax must be > 0, got {vmax}")
    if cmap not in colormaps:
        raise RenderInputError(f"unknown matplotlib colormap {cmap!r}")
    normalised = torch.nan_to_num(vals / vmax, nan=0.0).clamp(0.0, 1.0).numpy()
    colors = torch.from_numpy(colormaps[cmap](normalised)[:, :3]).float()
    picture = _render(vertices, faces, colors, size, view)
    return np.concatenate([picture, _colour_bar(size, float(vmax), cmap, unit)], axis=1)
