"""FaceTuneGAN losses (Olivier et al. 2023, sec. 3.3, eqs. 5-10).

Meshes are ``[B, V, 3]``; which space (normalised or mm) is the caller's choice and is stated at the
call site in :mod:`facegen.models.facetunegan.module`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def vertex_distance_loss(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean per-vertex Euclidean distance ``mean_{b,v} ||p_bv - t_bv||_2`` (eqs. 5, 6; AVD of eq. 1).

    Args:
        prediction, target: ``[B, V, 3]`` in the same unit.
        eps: added under the square root so the gradient is finite where the distance is 0.
    Returns:
        scalar tensor in that unit.
    """
    return (prediction - target).square().sum(-1).add(eps).sqrt().mean()


def style_reconstruction_loss(style_code_translated: torch.Tensor, style_code_source: torch.Tensor) -> torch.Tensor:
    """L1 distance between style codes (eq. 7), mean over batch and code entries.

    ``style_code_translated = E_s(x_t)`` of the translated mesh ``x_t = Dec(E_c(x), E_s(s))`` and
    ``style_code_source = E_s(s)`` of the style source; the module passes the source code detached
    (a fixed target, as MUNIT's latent reconstruction).

    Args:
        style_code_translated, style_code_source: ``[B, style_dim]``.
    """
    return F.l1_loss(style_code_translated, style_code_source)


def discriminator_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Conditional adversarial loss of ``D`` (eq. 8), logistic form on the selected class logits.

    ``E[-log sigmoid(D_s(s))] + E[-log(1 - sigmoid(D_s(x_t)))] = E[softplus(-D_s(s))] + E[softplus(D_s(x_t))]``.

    Args:
        real_logits: ``[B]`` logits of real meshes for their own style class.
        fake_logits: ``[B]`` logits of translated meshes for the style class they were translated to.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator side of eq. (8): ``E[softplus(-D_s(x_t))] = E[-log sigmoid(D_s(x_t))]``.

    Args:
        fake_logits: ``[B]`` logits of translated meshes for their target style class.
    """
    return F.softplus(-fake_logits).mean()


def feature_matching_loss(
    features_reconstructed: torch.Tensor,
    features_content: torch.Tensor,
    features_translated: torch.Tensor,
    features_style: torch.Tensor,
) -> torch.Tensor:
    """Feature-matching loss (eq. 9): ``E|D_f(x_r) - D_f(x)|_1 + E|D_f(x_t) - D_f(s)|_1``.

    Each L1 term is a mean over batch and features. All arguments ``[B, F]`` (discriminator features).
    """
    return F.l1_loss(features_reconstructed, features_content) + F.l1_loss(features_translated, features_style)
