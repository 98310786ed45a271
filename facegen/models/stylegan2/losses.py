"""StyleGAN2 losses: non-saturating logistic loss, path-length penalty, style mixing (R1: :mod:`facegen.models.gan`).

Goodfellow et al. 2014 (non-saturating loss), Mescheder et al. 2018 (R1, eq. 9), Karras et al. 2020
(path-length regularisation, eq. 4; style mixing, StyleGAN sec. 3.1); behaviour of NVlabs
stylegan2-ada-pytorch ``training/loss.py`` (``StyleGAN2Loss``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facegen.models.gan import input_gradient


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss ``mean(softplus(-D(G(z)))) = -log sigmoid(D(G(z)))``; logits ``[B, 1]`` -> scalar."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic D loss ``mean(softplus(D(G(z)))) + mean(softplus(-D(x)))``; logits ``[B, 1]`` -> scalar."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def path_length_penalty(images: torch.Tensor, ws: torch.Tensor, pl_mean: torch.Tensor, pl_decay: float = 0.01,
                        scaler=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Path-length penalty ``(||J_w^T y||_2 - a)^2`` with ``y ~ N(0, I) / sqrt(H W)`` (StyleGAN2 eq. 4).

    Args:
        images: ``[B, C, H, W]`` synthesised from ``ws [B, num_ws, w_dim]`` (requires grad).
        pl_mean: running mean ``a`` of the path lengths (scalar tensor; not modified here).
        pl_decay: decay of the running mean (0.01).
    Returns:
        ``(penalty [B], new_pl_mean scalar detached)``; the caller stores the new mean.
    """
    noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    grad = input_gradient(images * noise, ws, scaler)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    new_mean = pl_mean.lerp(lengths.mean(), pl_decay)
    return (lengths - new_mean).square(), new_mean.detach()


def mix_styles(mapping, z: torch.Tensor, c: torch.Tensor | None, ws: torch.Tensor, prob: float) -> torch.Tensor:
    """Style mixing regularisation: with probability ``prob`` replace ``ws[:, cutoff:]`` (cutoff uniform in
    ``[1, num_ws)``) by the w of a second random latent; ``ws [B, num_ws, w_dim]`` -> same shape."""
    num_ws = ws.shape[1]
    if prob <= 0 or num_ws < 2 or float(torch.rand(())) >= prob:
        return ws
    cutoff = int(torch.randint(1, num_ws, ()))
    ws2 = mapping(torch.randn_like(z), c, update_w_avg=False)
    return torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
