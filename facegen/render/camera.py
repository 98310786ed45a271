"""Cameras mapping world points (mm) to normalised device coordinates (NDC).

Conventions (all of facegen.render):

- World space is facegen's mesh space: millimetres, y up, x to the subject's left (viewer's right),
  and faces look towards +z. A camera sits on the +z side and looks along -z, so a face at the origin
  is seen from the front with no rotation.
- NDC: ``x`` in [-1, 1] from the left to the right image border, ``y`` in [-1, 1] from the bottom to
  the top border, ``z`` = depth in mm along the viewing direction (positive in front of the camera;
  smaller is closer). :func:`facegen.render.rasterize` keeps the smallest ``z`` per pixel.
- Pixel coordinates (landmarks): ``u`` to the right, ``v`` down, pixel centres at integers, so the
  pixel holding point ``(u, v)`` is row ``round(v)``, column ``round(u)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from facegen.errors import RenderInputError
from facegen.shapes import assert_shape


def _check_points(points: torch.Tensor, name: str = "points") -> None:
    assert_shape(points, ["B", "V", 3], name, error=RenderInputError, hint="world points in mm")


def _image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    if h <= 0 or w <= 0:
        raise RenderInputError(f"image_size {image_size} must be positive (an int or (H, W))")
    return h, w


def ndc_to_pixels(xy_ndc: torch.Tensor, image_size: int | tuple[int, int]) -> torch.Tensor:
    """NDC ``[..., 2]`` -> pixel coordinates ``[..., 2]`` (u right, v down, pixel centres at integers)."""
    h, w = _image_hw(image_size)
    u = (xy_ndc[..., 0] + 1.0) * (0.5 * w) - 0.5
    v = (1.0 - xy_ndc[..., 1]) * (0.5 * h) - 0.5
    return torch.stack([u, v], dim=-1)


def pixels_to_ndc(uv: torch.Tensor, image_size: int | tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`ndc_to_pixels`: pixel coordinates ``[..., 2]`` -> NDC ``[..., 2]``."""
    h, w = _image_hw(image_size)
    x = (uv[..., 0] + 0.5) / (0.5 * w) - 1.0
    y = 1.0 - (uv[..., 1] + 0.5) / (0.5 * h)
    return torch.stack([x, y], dim=-1)


@dataclass
class PerspectiveCamera:
    """Pinhole camera at ``(cx, cy, cz + distance)`` looking along -z at ``center``.

    ``x_ndc = f x_view / (aspect_ratio depth)``, ``y_ndc = f y_view / depth``, ``depth = eye_z - z``,
    with ``f = 1 / tan(fov / 2)`` (``fov_degrees`` is the vertical field of view) and
    ``aspect_ratio = W / H``. Rasterise its output with ``perspective_correct=True``
    (:attr:`perspective_correct`).

    Args:
        fov_degrees: vertical field of view in degrees (12 deg at 500 mm frames a head, about 105 mm tall).
        distance: distance from the camera to ``center`` along z, mm.
        center: the point looked at (world, mm).
        aspect_ratio: image width / height.
    """

    fov_degrees: float = 12.0
    distance: float = 500.0
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    aspect_ratio: float = 1.0
    perspective_correct = True

    @property
    def focal(self) -> float:
        """``1 / tan(fov / 2)``: NDC units per unit of ``x_view / depth``."""
        return 1.0 / math.tan(math.radians(self.fov_degrees) / 2.0)

    def transform(self, points: torch.Tensor) -> torch.Tensor:
        """World points ``[B, V, 3]`` mm -> NDC ``[B, V, 3]`` (``z`` = depth in mm). Differentiable.

        Raises:
            RenderInputError: ``points`` is not ``[B, V, 3]``.
        """
        _check_points(points)
        c = points.new_tensor(self.center)
        rel = points - c
        depth = self.distance - rel[..., 2]
        # Points behind the eye get a negative depth; the rasteriser drops their triangles.
        safe = torch.where(depth.abs() < 1e-6, torch.full_like(depth, 1e-6), depth)
        x = self.focal * rel[..., 0] / (safe * self.aspect_ratio)
        y = self.focal * rel[..., 1] / safe
        return torch.stack([x, y, depth], dim=-1)

    @classmethod
    def framing(cls, vertices: torch.Tensor, fov_degrees: float = 12.0, margin: float = 1.15,
                aspect_ratio: float = 1.0) -> "PerspectiveCamera":
        """A camera centred on the bounding box of ``vertices [V, 3]`` or ``[B, V, 3]`` (mm) that fits it.

        The box's x/y half-extents times ``margin`` fit inside the image at the box's front plane.
        """
        v = vertices.detach().reshape(-1, 3)
        lo, hi = v.min(0).values, v.max(0).values
        center = 0.5 * (lo + hi)
        half = 0.5 * (hi - lo)
        radius = max(float(half[0]) / aspect_ratio, float(half[1]), 1e-6) * margin
        distance = radius / math.tan(math.radians(fov_degrees) / 2.0) + float(half[2])
        return cls(fov_degrees=fov_degrees, distance=distance,
                   center=tuple(float(x) for x in center), aspect_ratio=aspect_ratio)


@dataclass
class OrthographicCamera:
    """Orthographic camera looking along -z at ``center``; ``half_extent`` mm map to NDC 1.

    ``x_ndc = (x - cx) / (half_extent aspect_ratio)``, ``y_ndc = (y - cy) / half_extent``,
    ``depth = distance - (z - cz)``. Rasterise its output with ``perspective_correct=False``.

    Args:
        half_extent: half the visible image height in mm.
        distance: depth of ``center`` in mm (only orders surfaces; keep it larger than the object).
        center: the point looked at (world, mm).
        aspect_ratio: image width / height.
    """

    half_extent: float = 120.0
    distance: float = 1000.0
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    aspect_ratio: float = 1.0
    perspective_correct = False

    def transform(self, points: torch.Tensor) -> torch.Tensor:
        """World points ``[B, V, 3]`` mm -> NDC ``[B, V, 3]`` (``z`` = depth in mm). Differentiable.

        Raises:
            RenderInputError: ``points`` is not ``[B, V, 3]``.
        """
        _check_points(points)
        rel = points - points.new_tensor(self.center)
        x = rel[..., 0] / (self.half_extent * self.aspect_ratio)
        y = rel[..., 1] / self.half_extent
        return torch.stack([x, y, self.distance - rel[..., 2]], dim=-1)

    @classmethod
    def framing(cls, vertices: torch.Tensor, margin: float = 1.15, aspect_ratio: float = 1.0) -> "OrthographicCamera":
        """A camera centred on the bounding box of ``vertices [V, 3]`` or ``[B, V, 3]`` (mm) that fits it."""
        v = vertices.detach().reshape(-1, 3)
        lo, hi = v.min(0).values, v.max(0).values
        center = 0.5 * (lo + hi)
        half = 0.5 * (hi - lo)
        half_extent = max(float(half[0]) / aspect_ratio, float(half[1]), 1e-6) * margin
        return cls(half_extent=half_extent, distance=float(half[2]) * 2.0 + 10.0 * half_extent,
                   center=tuple(float(x) for x in center), aspect_ratio=aspect_ratio)
