"""Hard z-buffer rasteriser and barycentric interpolation in plain PyTorch (CPU and CUDA).

Visibility is found without gradients, fully vectorised: every triangle's pixel bounding box is
expanded into (triangle, pixel) candidates (in chunks), each candidate is tested with edge functions,
and the nearest triangle per pixel wins by a scatter-min over a 64-bit key ``depth_bits << 32 | face``
(positive float32 depths order like their bit patterns, and the face index breaks ties). Then the
barycentric coordinates and depth of the winning triangle are recomputed *with* gradients from the
projected vertices, so :class:`Fragments` ``bary``/``zbuf`` and :func:`interpolate` are differentiable
w.r.t. vertex positions and attributes for fixed visibility (no silhouette gradients; the same
gradients as PyTorch3D's hard ``rasterize_meshes`` with ``blur_radius=0``).

Coverage rule: a pixel centre is inside a triangle when all three barycentrics are >= 0, so a centre
on a shared edge is covered by both triangles and the depth test picks one (no cracks). Triangles of
either winding are drawn unless ``cull_backfaces``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from facegen.render.camera import RenderInputError, _image_hw
from facegen.shapes import assert_shape

_BACKGROUND_KEY = torch.iinfo(torch.int64).max


class Fragments(NamedTuple):
    """Per-pixel rasterisation result.

    Attributes:
        pix_to_face: ``[B, H, W]`` int64, index into ``faces`` of the visible triangle, -1 = background.
        bary: ``[B, H, W, 3]`` barycentric coordinates of the pixel centre in the visible triangle
            (perspective-correct when rasterised so), 0 on background; differentiable w.r.t. the vertices.
        zbuf: ``[B, H, W]`` depth (NDC ``z``, mm) of the visible surface, -1 on background; differentiable.
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor
    zbuf: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``[B, H, W]`` bool, True where a triangle is visible."""
        return self.pix_to_face >= 0


def _check_mesh(verts: torch.Tensor, faces: torch.Tensor) -> None:
    assert_shape(verts, ["B", "V", 3], "verts_ndc", error=RenderInputError, hint="NDC x, y and depth z (mm)")
    assert_shape(faces, ["F", 3], "faces", error=RenderInputError, hint="triangle vertex indices")
    if faces.dtype not in (torch.int64, torch.int32):
        raise RenderInputError(f"faces: expected dtype int64 (or int32), got {faces.dtype}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise RenderInputError(f"faces index vertices outside [0, {verts.shape[1]}) of verts_ndc {tuple(verts.shape)}")


def _screen(verts_ndc: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """NDC x, y -> continuous pixel coordinates (pixel centres at integers), ``[B, V, 2]``."""
    x = (verts_ndc[..., 0] + 1.0) * (0.5 * w) - 0.5
    y = (1.0 - verts_ndc[..., 1]) * (0.5 * h) - 0.5
    return torch.stack([x, y], dim=-1)


def _barycentric(tri: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen-space barycentrics of points ``(px, py) [N]`` in triangles ``tri [N, 3, 2]``.

    Returns ``(bary [N, 3], signed_area [N])``; the signed area is twice the triangle's area in pixels^2.
    """
    x0, y0 = tri[:, 0, 0], tri[:, 0, 1]
    x1, y1 = tri[:, 1, 0], tri[:, 1, 1]
    x2, y2 = tri[:, 2, 0], tri[:, 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    safe = torch.where(area == 0, torch.ones_like(area), area)
    b0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / safe
    b1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / safe
    return torch.stack([b0, b1, 1.0 - b0 - b1], dim=-1), area


def _perspective(bary_screen: torch.Tensor, z: torch.Tensor,
                 perspective_correct: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen barycentrics ``[N, 3]`` and vertex depths ``[N, 3]`` -> (bary ``[N, 3]``, depth ``[N]``).

    Perspective-correct: ``b_i = (s_i / z_i) / sum_j (s_j / z_j)``, ``depth = 1 / sum_j (s_j / z_j)``
    (1/z is affine in screen space); otherwise the screen barycentrics and ``depth = sum_j s_j z_j``.
    """
    if not perspective_correct:
        return bary_screen, (bary_screen * z).sum(-1)
    weighted = bary_screen / z
    inv_depth = weighted.sum(-1)
    return weighted / inv_depth.unsqueeze(-1), 1.0 / inv_depth


@torch.no_grad()
def _visible_faces(screen: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, h: int, w: int,
                   perspective_correct: bool, cull_backfaces: bool, max_candidates: int) -> torch.Tensor:
    """Nearest triangle per pixel, ``[B, H, W]`` int64 (-1 = background). No gradients."""
    b, f = screen.shape[0], faces.shape[0]
    tri = screen[:, faces]                           # [B, F, 3, 2]
    tri_z = depth[:, faces]                          # [B, F, 3]
    lo = tri.amin(dim=2)
    hi = tri.amax(dim=2)
    x_lo = lo[..., 0].ceil().clamp(min=0)
    y_lo = lo[..., 1].ceil().clamp(min=0)
    x_hi = hi[..., 0].floor().clamp(max=w - 1)
    y_hi = hi[..., 1].floor().clamp(max=h - 1)
    area = ((tri[..., 1, 0] - tri[..., 0, 0]) * (tri[..., 2, 1] - tri[..., 0, 1])
            - (tri[..., 2, 0] - tri[..., 0, 0]) * (tri[..., 1, 1] - tri[..., 0, 1]))
    keep = (x_lo <= x_hi) & (y_lo <= y_hi) & (tri_z > 0).all(-1) & (area != 0) & torch.isfinite(area)
    if cull_backfaces:
        # Counter-clockwise in NDC (y up) is front-facing; the screen y axis points down, so area < 0.
        keep &= area < 0
    nx = torch.where(keep, x_hi - x_lo + 1, torch.zeros_like(x_lo)).long().flatten()
    ny = torch.where(keep, y_hi - y_lo + 1, torch.zeros_like(y_lo)).long().flatten()
    counts = nx * ny                                 # candidate pixels per (batch, face)
    tri_flat = tri.reshape(b * f, 3, 2)
    z_flat = tri_z.reshape(b * f, 3)
    x0 = x_lo.long().flatten()
    y0 = y_lo.long().flatten()

    keys = torch.full((b * h * w,), _BACKGROUND_KEY, dtype=torch.int64, device=screen.device)
    ends = counts.cumsum(0)
    total = int(ends[-1]) if ends.numel() else 0
    start_tri = 0
    while start_tri < b * f and total > 0:
        # Largest run of triangles whose candidates fit in max_candidates (at least one triangle).
        base = int(ends[start_tri - 1]) if start_tri > 0 else 0
        stop_tri = int(torch.searchsorted(ends, base + max_candidates, right=True))
        stop_tri = min(max(stop_tri, start_tri + 1), b * f)
        ids = torch.arange(start_tri, stop_tri, device=screen.device)
        cnt = counts[start_tri:stop_tri]
        n = int(cnt.sum())
        start_tri = stop_tri
        if n == 0:
            continue
        cand = torch.repeat_interleave(ids, cnt, output_size=n)
        offset = torch.arange(base, base + n, device=screen.device) - (ends[cand] - counts[cand])
        width = nx[cand]
        px = x0[cand] + offset % width
        py = y0[cand] + offset // width
        bary, _ = _barycentric(tri_flat[cand], px.to(screen.dtype), py.to(screen.dtype))
        inside = (bary >= 0).all(-1)
        cand, px, py, bary = cand[inside], px[inside], py[inside], bary[inside]
        _, z = _perspective(bary, z_flat[cand], perspective_correct)
        key = (z.float().view(torch.int32).long() << 32) | (cand % f)
        pixel = (cand // f) * (h * w) + py * w + px
        keys.scatter_reduce_(0, pixel, key, reduce="amin")
    face = torch.where(keys == _BACKGROUND_KEY, torch.full_like(keys, -1), keys & 0xFFFFFFFF)
    return face.view(b, h, w)


def rasterize(verts_ndc: torch.Tensor, faces: torch.Tensor, image_size: int | tuple[int, int],
              perspective_correct: bool = False, cull_backfaces: bool = False,
              max_candidates: int = 1 << 22) -> Fragments:
    """Rasterise triangles with a hard z-buffer.

    Args:
        verts_ndc: ``[B, V, 3]`` NDC vertices (x right, y up, z = depth > 0, smaller is nearer), e.g. from
            ``camera.transform(points)``. Triangles with a vertex at depth <= 0 are dropped (no clipping).
        faces: ``[F, 3]`` int64 vertex indices, shared by the batch.
        image_size: ``H`` (square) or ``(H, W)``.
        perspective_correct: interpolate with perspective-correct barycentrics (use the camera's
            ``perspective_correct``: True for :class:`PerspectiveCamera`).
        cull_backfaces: drop triangles that are clockwise on screen (their vertices in NDC, y up).
        max_candidates: (triangle, pixel) pairs tested at once; bounds memory.

    Returns:
        :class:`Fragments`; ``pix_to_face`` indexes ``faces`` (not packed over the batch).

    Raises:
        RenderInputError: bad shapes, or ``faces`` indexing outside ``verts_ndc``.
    """
    _check_mesh(verts_ndc, faces)
    h, w = _image_hw(image_size)
    faces = faces.long()
    b, v = verts_ndc.shape[:2]
    screen = _screen(verts_ndc, h, w)
    depth = verts_ndc[..., 2]
    pix_to_face = _visible_faces(screen.detach(), depth.detach(), faces, h, w, perspective_correct,
                                 cull_backfaces, max_candidates)

    # Differentiable barycentrics and depth of the visible triangle at each covered pixel centre.
    pixel = torch.nonzero(pix_to_face.view(-1) >= 0).squeeze(1)
    face = pix_to_face.view(-1)[pixel]
    batch = pixel // (h * w)
    vid = faces[face] + (batch * v).unsqueeze(1)                       # [P, 3] into the flat batch
    tri = screen.reshape(b * v, 2)[vid]                                  # [P, 3, 2]
    px = (pixel % w).to(screen.dtype)
    py = ((pixel // w) % h).to(screen.dtype)
    bary_screen, _ = _barycentric(tri, px, py)
    bary_vis, z_vis = _perspective(bary_screen, depth.reshape(b * v)[vid], perspective_correct)
    bary = verts_ndc.new_zeros(b * h * w, 3).index_put((pixel,), bary_vis)
    zbuf = verts_ndc.new_full((b * h * w,), -1.0).index_put((pixel,), z_vis)
    return Fragments(pix_to_face, bary.view(b, h, w, 3), zbuf.view(b, h, w))


def interpolate(attrs: torch.Tensor, faces: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """Interpolate per-vertex attributes at every pixel with the fragments' barycentrics.

    ``out[b, y, x] = sum_i bary[b, y, x, i] * attrs[b, faces[pix_to_face[b, y, x], i]]``, 0 on background
    (PyTorch3D ``interpolate_face_attributes``). Differentiable w.r.t. ``attrs`` and, through
    ``fragments.bary``, the vertex positions that were rasterised.

    Args:
        attrs: ``[B, V, C]`` (or ``[1, V, C]``, shared by the batch) per-vertex attributes.
        faces: ``[F, 3]`` int64, the faces that were rasterised.
        fragments: output of :func:`rasterize`.

    Returns:
        ``[B, H, W, C]``.

    Raises:
        RenderInputError: ``attrs`` is not ``[B or 1, V, C]`` or ``faces`` not ``[F, 3]``.
    """
    b, h, w = fragments.pix_to_face.shape
    assert_shape(faces, ["F", 3], "faces", error=RenderInputError, hint="the faces that were rasterised")
    shared = attrs.dim() == 3 and attrs.shape[0] == 1
    assert_shape(attrs, [1 if shared else b, "V", "C"], "attrs", error=RenderInputError,
                 hint="or [1, V, C] shared by the batch")
    attrs = attrs.expand(b, -1, -1)
    v, c = attrs.shape[1], attrs.shape[2]
    # Gather only at covered pixels (often a small part of the image), then scatter into zeros.
    pixel = torch.nonzero(fragments.pix_to_face.view(-1) >= 0).squeeze(1)
    vid = faces.long()[fragments.pix_to_face.view(-1)[pixel]] + (pixel // (h * w) * v).unsqueeze(1)   # [P, 3]
    corner = attrs.reshape(b * v, c)[vid]                                                            # [P, 3, C]
    values = (fragments.bary.reshape(b * h * w, 3)[pixel].unsqueeze(-1) * corner).sum(1)
    return attrs.new_zeros(b * h * w, c).index_put((pixel,), values).view(b, h, w, c)
