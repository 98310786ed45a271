"""Thin-plate-spline warps of images through keypoints (Bookstein 1989), with fixed image-border anchors.

The spline is solved here (:func:`tps_weights`); kornia's ``warp_image_tps`` samples the image
(``get_tps_transform`` conventions: points in [-1, 1]).
"""
from __future__ import annotations

import numpy as np
import torch
from kornia.geometry.transform import get_tps_transform, warp_image_tps

from facegen.errors import FacegenError
from facegen.shapes import assert_shape


def border_anchors(height: int, width: int, per_side: int = 4) -> torch.Tensor:
    """``[4 * per_side, 2]`` pixel points evenly spaced on the image border (corners included), held fixed."""
    t = torch.linspace(0.0, 1.0, per_side + 1)[:-1]
    x0, x1, y0, y1 = -0.5, width - 0.5, -0.5, height - 0.5
    top = torch.stack([x0 + t * (x1 - x0), torch.full_like(t, y0)], -1)
    right = torch.stack([torch.full_like(t, x1), y0 + t * (y1 - y0)], -1)
    bottom = torch.stack([x1 - t * (x1 - x0), torch.full_like(t, y1)], -1)
    left = torch.stack([torch.full_like(t, x0), y1 - t * (y1 - y0)], -1)
    return torch.cat([top, right, bottom, left])


def separate_points(reference: np.ndarray, points: np.ndarray, min_separation: float = 1.0) -> np.ndarray:
    """``points [..., K, 2]`` with pairs pushed apart to ``min(min_separation, their distance in reference)``.

    A thin-plate spline cannot map two distinct points onto one (the system is singular): when a driven
    eyelid lands on the other lid (``points`` = destinations, ``reference`` = sources), or when the still's
    inner and outer lip points coincide and the mouth opens (``points`` = sources, ``reference`` =
    destinations), the later point of each close pair is set ``min_separation`` away from the earlier one
    along their direction in ``reference`` (a slit stays open). Pairs that also coincide in ``reference``
    are left alone (:func:`tps_warp` uses such duplicates once). ``reference`` broadcasts against ``points``.
    """
    ref = np.asarray(reference, np.float64)
    out = np.array(points, np.float64, copy=True)
    ref = np.broadcast_to(ref, out.shape).reshape(-1, *out.shape[-2:])
    flat = out.reshape(-1, *out.shape[-2:])
    for b in range(flat.shape[0]):
        for _ in range(3):  # a few passes: moving one pair can bring a third point close
            d = np.linalg.norm(flat[b][:, None] - flat[b][None], axis=-1)
            i, j = np.nonzero(np.triu(d < min_separation, 1))
            moved = False
            for a, c in zip(i, j):
                direction = ref[b, c] - ref[b, a]
                norm = np.linalg.norm(direction)
                target = min(min_separation, norm)  # never wider apart than in the reference
                if norm < 1e-6 or np.linalg.norm(flat[b, c] - flat[b, a]) >= target - 1e-9:
                    continue
                flat[b, c] = flat[b, a] + direction / norm * target
                moved = True
            if not moved:
                break
    return flat.reshape(out.shape).astype(np.float32)


def _normalise(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates (centres at integers) -> grid_sample's ``align_corners=False`` frame."""
    scale = points.new_tensor([2.0 / width, 2.0 / height])
    return (points + 0.5) * scale - 1.0


def tps_weights(sites: torch.Tensor, values: torch.Tensor, smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bookstein's thin-plate spline through ``sites [B, N, 2] -> values [B, N, 2]`` (Bookstein 1989, eq. 1-3).

    ``f(x) = a_0 + a_x x + a_y y + sum_j w_j U(|x - site_j|)`` with kornia's kernel ``U(r) = r^2 log r``
    (``0.5 r^2 log r^2``, :func:`kornia.geometry.transform.thin_plate_spline._kernel_distance`), solved from
    ``[[K + smoothing I, P], [P^T, 0]] [w; a] = [values; 0]`` in float64. Returns ``(kernel_weights [B, N, 2],
    affine_weights [B, 3, 2])`` in the layout of kornia's ``warp_points_tps`` / ``warp_image_tps`` with
    ``kernel_centers = sites``.

    kornia 0.9's own ``get_tps_transform(a, b)`` puts the kernels at the *values* ``b`` while interpolating at
    ``a``; that system is not Bookstein's and turns ill-conditioned once points move by about their spacing
    (measured on a 64-pixel face: a 4.8-pixel mouth opening sent parts of the image 235 pixels away), hence
    this solve; :func:`tps_warp` can still use kornia's with ``solver="kornia"``.
    """
    b, n, _ = sites.shape
    sites64, values64 = sites.to(torch.float64), values.to(torch.float64)
    r2 = torch.cdist(sites64, sites64).square()
    safe = torch.where(r2 > 0, r2, torch.ones_like(r2))
    kernel = torch.where(r2 > 0, 0.5 * r2 * torch.log(safe), torch.zeros_like(r2))                  # U(r) = r^2 log r
    kernel = kernel + smoothing * torch.eye(n, dtype=torch.float64, device=sites.device)
    p = torch.cat([torch.ones(b, n, 1, dtype=torch.float64, device=sites.device), sites64], -1)     # [B, N, 3]
    top = torch.cat([kernel, p], -1)                                                                  # [B, N, N+3]
    bottom = torch.cat([p.transpose(1, 2), torch.zeros(b, 3, 3, dtype=torch.float64, device=sites.device)], -1)
    rhs = torch.cat([values64, torch.zeros(b, 3, 2, dtype=torch.float64, device=sites.device)], 1)
    solution = torch.linalg.solve(torch.cat([top, bottom], 1), rhs)                                  # [B, N+3, 2]
    return solution[:, :n], solution[:, n:]


def tps_warp(image: torch.Tensor, src_kp: torch.Tensor, dst_kp: torch.Tensor, *, anchors_per_side: int = 4,
             padding_mode: str = "border", min_separation: float = 1.0, dedupe: float = 1e-3,
             solver: str = "bookstein", smoothing: float = 0.0) -> torch.Tensor:
    """Warp images so that the content at ``src_kp`` moves to ``dst_kp`` (thin-plate spline, kornia warp).

    The spline goes through the keypoints plus ``4 * anchors_per_side`` fixed points on the image border
    (:func:`border_anchors`; 0 = none), so the frame stays put. :func:`kornia.geometry.transform.warp_image_tps`
    maps each output pixel back to an input pixel, so the spline maps ``dst -> src``: Bookstein's spline with
    the sites at ``dst`` (:func:`tps_weights`, default) or kornia's ``get_tps_transform(dst, src)`` with kernel
    centres ``src`` (``solver="kornia"``, unstable for large motions); both in grid_sample's
    ``align_corners=False`` frame. Destination points closer than ``min_separation`` pixels are pushed apart
    (:func:`separate_points`: a closing eyelid keeps a slit, otherwise the system is singular) and points that
    coincide in both sets (within ``dedupe`` pixels) are used once.

    Args:
        image: ``[B, C, H, W]`` float (any range).
        src_kp, dst_kp: ``[B, K, 2]`` pixel coordinates (u right, v down, pixel centres at integers).
        padding_mode: grid_sample padding outside the image (``"border"``, ``"zeros"``, ``"reflection"``).
        smoothing: Bookstein's regulariser ``lambda`` (0 = exact interpolation).

    Returns:
        ``[B, C, H, W]`` warped images, same dtype as ``image``.

    Raises:
        facegen.errors.ShapeError: ``image`` is not ``[B, C, H, W]`` or ``src_kp``, ``dst_kp`` not both ``[B, K, 2]``.
        FacegenError: an unknown ``solver``.
    """
    assert_shape(image, ["B", "C", "H", "W"], "image")
    assert_shape(src_kp, [image.shape[0], "K", 2], "src_kp", hint="(x, y) pixels per image of the batch")
    assert_shape(dst_kp, list(src_kp.shape), "dst_kp", hint="the shape of src_kp")
    if solver not in ("bookstein", "kornia"):
        raise FacegenError(f"tps_warp: solver={solver!r}; expected 'bookstein' or 'kornia'")
    b, _, h, w = image.shape
    src_np = src_kp.detach().cpu().double().numpy()
    dst_np = dst_kp.detach().cpu().double().numpy()
    if min_separation > 0:
        if solver == "kornia":  # its kernel centres are the sources: they must be distinct too
            src_np = separate_points(dst_np, src_np, min_separation)
        dst_np = separate_points(src_np, dst_np, min_separation)
    src = torch.from_numpy(np.asarray(src_np, np.float64))
    dst = torch.from_numpy(np.asarray(dst_np, np.float64))
    if anchors_per_side > 0:
        anchors = border_anchors(h, w, anchors_per_side).to(torch.float64)[None].expand(b, -1, -1)
        src, dst = torch.cat([src, anchors], 1), torch.cat([dst, anchors], 1)
    out = []
    for i in range(b):  # per image: the duplicates differ between images
        d_i, s_i = dst[i], src[i]
        close = (torch.cdist(d_i, d_i) < dedupe) & ((torch.cdist(s_i, s_i) < dedupe) | (solver == "bookstein"))
        keep = ~torch.triu(close, 1).any(0)
        d_n = _normalise(d_i[keep], h, w)[None].to(image.device)
        s_n = _normalise(s_i[keep], h, w)[None].to(image.device)
        if solver == "bookstein":
            kernel_w, affine_w = tps_weights(d_n, s_n, smoothing)
            centres = d_n
        else:
            kernel_w, affine_w = get_tps_transform(d_n, s_n)
            centres = s_n
        out.append(warp_image_tps(image[i:i + 1].to(torch.float64), centres, kernel_w, affine_w,
                                  align_corners=False, padding_mode=padding_mode))
    return torch.cat(out).to(image.dtype)
