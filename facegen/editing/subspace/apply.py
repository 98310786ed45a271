"""Apply a micromotion direction: ``I_t = G(V_0 + alpha * t * dV)`` (Wu et al., CPAL 2024, eq. 1).

``V_0`` is any W+ latent: a generated seed's ``mapping(z)`` or a projected photo's ``w_plus``.
Optional per-layer masks restrict or weight the edit per W+ layer. Frames are written as mp4/gif
(:func:`facegen.imaging.write_video`) and as a grid (rows = latents, columns = frames).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from facegen.editing.subspace.decomposition import MicromotionError
from facegen.editing.subspace.direction import MicromotionDirection
from facegen.imaging import images_to_grid, to_uint8, write_png
from facegen.models.stylegan2.projection import synthesize
from facegen.shapes import assert_shape


@torch.no_grad()
def seed_latents(G: nn.Module, seeds: Sequence[int], truncation_psi: float = 0.7) -> Tensor:
    """W+ latents ``[S, num_ws, w_dim]`` of ``z = np.random.RandomState(seed).randn(1, z_dim)`` (facegen.generate's z)."""
    device = next(G.parameters()).device
    z = torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in seeds])).float()
    return G.mapping(z.to(device), None, truncation_psi=truncation_psi).cpu()


def edit_strengths(direction: MicromotionDirection, num_frames: int, alpha: float | None = None) -> Tensor:
    """Strengths ``s_t = alpha * t`` for ``t = linspace(0, 1, num_frames)`` ``[T]``.

    With ``alpha=None`` the sweep is ``linspace(*direction.alpha_range, num_frames)``.
    """
    if num_frames < 1:
        raise MicromotionError(f"num_frames must be >= 1, got {num_frames}")
    if alpha is not None:
        return float(alpha) * torch.linspace(0.0, 1.0, num_frames)
    lo, hi = direction.alpha_range
    return torch.linspace(float(lo), float(hi), num_frames)


def layer_mask(num_ws: int, layers: Sequence[int] | None = None, weights: Sequence[float] | None = None) -> Tensor:
    """Per-layer weights ``[num_ws]``: 1 on ``layers`` (all when ``None``), 0 elsewhere, times ``weights``.

    Raises:
        MicromotionError: a layer index out of range or ``weights`` not of length ``num_ws``.
    """
    mask = torch.ones(num_ws)
    if layers is not None:
        layers = [int(i) for i in layers]
        if any(i < 0 or i >= num_ws for i in layers):
            raise MicromotionError(f"layer mask {layers} has indices outside 0..{num_ws - 1}")
        mask = torch.zeros(num_ws)
        mask[layers] = 1.0
    if weights is not None:
        weights = torch.as_tensor(list(weights), dtype=torch.float32)
        assert_shape(weights, [num_ws], "weights", error=MicromotionError, hint="one weight per W+ layer")
        mask = mask * weights
    return mask


def edit_latents(w_plus: Tensor, dv: Tensor, strengths: Tensor, mask: Tensor | None = None) -> Tensor:
    """``w_plus [B, num_ws, w_dim] + s_t * mask[:, None] * dv`` for each ``s_t`` -> ``[B, T, num_ws, w_dim]``.

    Raises:
        MicromotionError: ``dv`` is not ``[num_ws, w_dim]``, ``w_plus`` not ``[B, num_ws, w_dim]`` of the same
            ``num_ws, w_dim``, ``strengths`` not ``[T]`` or ``mask`` not ``[num_ws]``.
    """
    assert_shape(dv, ["num_ws", "w_dim"], "dv", error=MicromotionError)
    assert_shape(w_plus, ["B", *dv.shape], "w_plus", error=MicromotionError,
                 hint="W+ latents [B, num_ws, w_dim] with the num_ws, w_dim of dv")
    assert_shape(strengths, ["T"], "strengths", error=MicromotionError, hint="one edit strength per frame")
    if mask is not None:
        assert_shape(mask, [dv.shape[0]], "mask", error=MicromotionError, hint="one weight per W+ layer")
    dv = dv.to(w_plus)
    if mask is not None:
        dv = dv * mask.to(w_plus)[:, None]
    strengths = strengths.to(w_plus)
    return w_plus[:, None] + strengths[None, :, None, None] * dv[None, None]      # [B, T, num_ws, w_dim]


@torch.no_grad()
def render_edit(G: nn.Module, w_plus: Tensor, direction: MicromotionDirection, strengths: Tensor,
                mask: Tensor | None = None, noise: dict[str, Tensor] | None = None, batch_size: int = 16) -> Tensor:
    """Frames ``G.synthesis(V_0 + s_t dV)`` ``[B, T, C, H, W]`` in about [-1, 1].

    Args:
        w_plus: ``[B, num_ws, w_dim]`` start latents.
        noise: per-latent noise maps ``{buffer name: [B, 1, h, w]}`` of a projection (None: the
            generator's ``noise_const``).
    """
    device = next(G.parameters()).device
    ws = edit_latents(w_plus.to(device), direction.tensor(device), strengths, mask)   # [B, T, num_ws, w_dim]
    B, T = ws.shape[:2]
    frames = []
    for b in range(B):
        for start in range(0, T, batch_size):
            chunk = ws[b, start:start + batch_size]
            if noise is None:
                frames.append(G.synthesis(chunk, noise_mode="const"))
            else:
                maps = {k: v[b:b + 1].to(device).expand(len(chunk), -1, -1, -1) for k, v in noise.items()}
                frames.append(synthesize(G, chunk, maps))
    images = torch.cat(frames)
    return images.view(B, T, *images.shape[1:]).cpu()


def to_frames(images: Tensor, scale: int = 1) -> np.ndarray:
    """``[T, C, H, W]`` in [-1, 1] -> ``uint8 [T, H*scale, W*scale, 3]`` (grey repeated to RGB, nearest upscaling)."""
    pixels = to_uint8(images)
    pixels = np.repeat(pixels, 3, axis=3) if pixels.shape[3] == 1 else pixels
    if scale > 1:
        pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
    return pixels


def frame_grid(images: Tensor) -> np.ndarray:
    """``[B, T, C, H, W]`` -> uint8 grid ``[B*H, T*W, 3]`` (row = latent, column = frame; grey stays 2-D).

    Raises:
        MicromotionError: ``images`` is not ``[B, T, C, H, W]``.
    """
    assert_shape(images, ["B", "T", "C", "H", "W"], "images", error=MicromotionError,
                 hint="frames of render_edit")
    B, T = images.shape[:2]
    return images_to_grid(images.reshape(B * T, *images.shape[2:]), cols=T)


def save_grid(path: str | os.PathLike, images: Tensor) -> Path:
    """Write :func:`frame_grid` of ``images [B, T, C, H, W]`` as a PNG (atomic)."""
    return write_png(path, frame_grid(images))
