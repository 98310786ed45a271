"""StyleRig's losses (Tewari et al., CVPR 2020, sec. 4 eqs. for DFR and sec. 5 for RigNet).

Images here are ``[B, 3, H, W]`` in [0, 1] (the renderer's range; generator images are mapped with
``(x + 1) / 2``), landmarks ``[B, 68, 2]`` in pixels, parameters ``p [B, P]``
(:class:`facegen.morphable.params.ParamLayout`).

- ``L_photo(I, p) = ||M (I - R(p))||_2^2`` with ``M`` the rendered face mask, normalised here by
  the number of face pixels (a per-pixel mean of the squared RGB error over the mask).
- ``L_land(I, p) = ||L_I - L_M||_2^2``: detected landmarks of ``I`` vs the model's projected
  landmarks, averaged over the 68 points and divided by ``S^2`` (``S`` = image size in pixels).
- ``L_render = L_photo + lambda_land L_land``.
- DFR: ``L_F = L_render(I_w, F(w)) + lambda_reg L_reg(F(w))`` with the statistical regulariser
  ``L_reg = w_id ||alpha||^2 + w_exp ||delta||^2 + w_alb ||beta||^2`` (coefficients in standard
  deviations, i.e. the negative log of the model's Gaussian prior up to a constant).
- RigNet: ``L_total = L_rec + L_edit + L_consist`` with
  ``L_rec = ||RigNet(w, F(w)) - w||_2^2``,
  ``L_edit = L_render(I_v, p_edit)``, ``p_edit`` = ``p_v`` with the controlled block of ``p_hat = F(w_hat)``,
  ``L_consist = L_render(I_w, p_consist)``, ``p_consist`` = ``p_hat`` with the controlled block of ``p_w``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from facegen.errors import RenderInputError
from facegen.models.stylerig.rignet import swap_block
from facegen.morphable.params import ParamLayout
from facegen.render.face import FaceRenderer, FaceRendering
from facegen.shapes import assert_shape


def photometric_loss(image: torch.Tensor, rendered: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B]`` masked squared photometric error: ``sum_px M ||I - R||^2 / sum_px M``.

    Args:
        image: target ``[B, 3, H, W]`` in [0, 1]; rendered: ``[B, 3, H, W]``; mask: ``[B, 1, H, W]``.

    Raises:
        RenderInputError: shapes differ.
    """
    assert_shape(image, ["B", 3, "H", "W"], "photometric loss: image", error=RenderInputError)
    b, _, h, w = image.shape
    assert_shape(rendered, [b, 3, h, w], "photometric loss: rendering", error=RenderInputError,
                 hint="the renderer's image size must be the generator's")
    assert_shape(mask, [b, 1, h, w], "photometric loss: mask", error=RenderInputError)
    per_pixel = (image - rendered).pow(2).sum(1, keepdim=True)                # [B, 1, H, W]
    return (per_pixel * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp(min=1.0)


def landmark_loss(target: torch.Tensor, predicted: torch.Tensor, image_size: int) -> torch.Tensor:
    """``[B]`` mean squared landmark distance ``mean_k ||q_k - L_k||^2 / S^2`` (pixels -> image fractions).

    Raises:
        RenderInputError: shapes differ or are not ``[B, K, 2]``.
    """
    assert_shape(target, ["B", "K", 2], "landmark loss: target", error=RenderInputError, hint="pixels")
    assert_shape(predicted, list(target.shape), "landmark loss: prediction", error=RenderInputError,
                 hint="the target's [B, K, 2] (pixels)")
    return (target - predicted).pow(2).sum(-1).mean(-1) / float(image_size) ** 2


def statistical_regulariser(p: torch.Tensor, layout: ParamLayout, w_id: float = 1.0, w_exp: float = 1.0,
                            w_alb: float = 1.0) -> torch.Tensor:
    """``[B]`` ``w_id ||alpha||^2 + w_exp ||delta||^2 + w_alb ||beta||^2`` of the identity, expression
    and albedo coefficients of ``p [B, P]``."""
    parts = layout.split(p)
    return (w_id * parts["identity"].pow(2).sum(1) + w_exp * parts["expression"].pow(2).sum(1)
            + w_alb * parts["albedo"].pow(2).sum(1))


@dataclass
class RenderLoss:
    """Output of :func:`render_loss`: ``total [B]``, its terms ``photo [B]``, ``land [B]`` and the rendering."""

    total: torch.Tensor
    photo: torch.Tensor
    land: torch.Tensor
    rendering: FaceRendering


def render_loss(renderer: FaceRenderer, image: torch.Tensor, p: torch.Tensor, landmarks: torch.Tensor | None = None,
                lambda_land: float = 1.0) -> RenderLoss:
    """``L_render(I, p) = L_photo(I, p) + lambda_land L_land(I, p)`` per sample.

    Args:
        renderer: the :class:`FaceRenderer` (its image size must equal ``image``'s).
        image: target ``[B, 3, H, W]`` in [0, 1].
        p: ``[B, P]`` parameters to render.
        landmarks: ``[B, 68, 2]`` target landmarks in pixels, or ``None`` (no landmark term, ``land = 0``).
        lambda_land: weight of the landmark term.
    """
    out = renderer(p)
    photo = photometric_loss(image, out.image, out.mask)
    if landmarks is None:
        land = photo.new_zeros(photo.shape)
    else:
        land = landmark_loss(landmarks, out.landmarks, max(image.shape[-2:]))
    return RenderLoss(total=photo + lambda_land * land, photo=photo, land=land, rendering=out)


def reconstruction_loss(w_hat: torch.Tensor, w_plus: torch.Tensor) -> torch.Tensor:
    """``[B]`` ``||RigNet(w, F(w)) - w||_2^2`` summed over ``w_dim`` and averaged over the W+ layers."""
    return (w_hat - w_plus).pow(2).sum(-1).mean(-1)


def edit_loss(renderer: FaceRenderer, image_v: torch.Tensor, p_v: torch.Tensor, p_hat: torch.Tensor,
              mask: torch.Tensor, landmarks_v: torch.Tensor | None = None, lambda_land: float = 1.0) -> RenderLoss:
    """``L_edit = L_render(I_v, p_edit)``, ``p_edit = p_v`` with the controlled block (``mask [P]``) of ``p_hat``."""
    return render_loss(renderer, image_v, swap_block(p_v, p_hat, mask), landmarks_v, lambda_land)


def consistency_loss(renderer: FaceRenderer, image_w: torch.Tensor, p_w: torch.Tensor, p_hat: torch.Tensor,
                     mask: torch.Tensor, landmarks_w: torch.Tensor | None = None,
                     lambda_land: float = 1.0) -> RenderLoss:
    """``L_consist = L_render(I_w, p_consist)``, ``p_consist = p_hat`` with the controlled block of ``p_w``."""
    return render_loss(renderer, image_w, swap_block(p_hat, p_w, mask), landmarks_w, lambda_land)
