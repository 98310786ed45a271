"""FaceTuneGAN's training objective (Olivier et al. 2023, sec. 3.3): the generator and discriminator terms of
eq. (10) for one batch, plus the Laplacian, R1 and paired terms, from the losses of
:mod:`facegen.models.facetunegan.losses`.

``module`` is the :class:`~facegen.models.facetunegan.FaceTuneGAN` being trained: its ``generator``,
``discriminator``, ``loss_config`` (:class:`~facegen.models.facetunegan.config.LossConfig`), ``edges`` and
``distance_weight`` buffers and its ``denormalise``. Meshes are normalised ``[B, V, 3]`` unless a term says mm.
"""
from __future__ import annotations

import torch

from facegen.geometry import uniform_laplacian_smoothing
from facegen.models.facetunegan import losses
from facegen.models.gan import grad_scaler, r1_penalty


def vertex_distance(module, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Vertex distance loss (eqs. 5, 6) between normalised ``[B, V, 3]`` meshes in ``loss.loss_space``:
    ``"normalised"`` as they are, ``"mm"`` with each vertex weighted by ``std / mean(std)``."""
    if module.loss_config.loss_space == "mm":
        weight = module.distance_weight
        return losses.vertex_distance_loss(prediction * weight, target * weight)
    return losses.vertex_distance_loss(prediction, target)


def generator_terms(module, x: torch.Tensor, s: torch.Tensor, s_label: torch.Tensor,
                    pair: tuple[torch.Tensor, torch.Tensor] | None = None):
    """Generator terms of eq. (10) for content ``x`` and style source ``s`` (normalised ``[B, V, 3]``).

    Args:
        x, s: ``[B, V, 3]`` normalised; s_label: ``[B]`` expression labels of ``s``.
        pair: optional ``(targets [B, V, 3], mask [B])`` of the paired translation loss (``loss.lambda_pair``,
            see :mod:`facegen.models.facetunegan.pairs`).
    Returns:
        ``(terms, x_t)``: the loss terms ``rec``, ``cycle``, ``srec``, ``adv``, ``feat``, ``lap`` (mm) (and
        ``pair``), their weighted sum ``g_total``, ``rec_error_mm`` (and ``pair_error_mm``, the paired translation
        error in mm; both without gradient), and the translated meshes ``x_t`` (normalised, detached) for the
        discriminator step.
    """
    g, d = module.generator, module.discriminator
    content_x = g.encode_content(x)
    style_x, style_s = g.encode_style(x), g.encode_style(s)
    x_r = g.decode(content_x, style_x)                                   # eq. (3)
    x_t = g.decode(content_x, style_s)                                   # eq. (4)
    x_cycle = g.decode(g.encode_content(x_t), style_x)
    style_t = g.encode_style(x_t)
    logits_t, features_t = d(x_t)
    features_r = d(x_r)[1]
    with torch.no_grad():
        features_x, features_s = d(x)[1], d(s)[1]
    x, x_r, x_cycle = x.float(), x_r.float(), x_cycle.float()
    terms = {
        "rec": vertex_distance(module, x_r, x),                                               # eq. (5)
        "cycle": vertex_distance(module, x_cycle, x),                                         # eq. (6)
        "srec": losses.style_reconstruction_loss(style_t.float(), style_s.detach().float()),  # eq. (7)
        "adv": losses.generator_adversarial_loss(d.select(logits_t.float(), s_label)),        # eq. (8)
        "feat": losses.feature_matching_loss(features_r.float(), features_x.float(),
                                             features_t.float(), features_s.float()),        # eq. (9)
        "lap": uniform_laplacian_smoothing(module.denormalise(x_t), module.edges),            # mm
    }
    if pair is not None:
        targets, mask = pair
        terms["pair"] = (vertex_distance(module, x_t.float()[mask], targets[mask].float())
                         if bool(mask.any()) else x_t.float().sum() * 0.0)
    terms["g_total"] = sum(module.loss_config.weight(name) * value for name, value in terms.items())
    with torch.no_grad():
        terms["rec_error_mm"] = (module.denormalise(x_r) - module.denormalise(x)).norm(dim=-1).mean()
        if pair is not None and bool(pair[1].any()):      # the eq. (14) error on training pairs, mm
            terms["pair_error_mm"] = (module.denormalise(x_t[pair[1]]) - module.denormalise(pair[0][pair[1]])
                                      ).norm(dim=-1).mean()
    return terms, x_t.detach()


def discriminator_terms(module, s: torch.Tensor, s_label: torch.Tensor, x_t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Discriminator terms: eq. (8) on real style sources ``s`` and translations ``x_t`` (both scored for class
    ``s_label``), the R1 penalty on ``s``, their sum ``d_total = d_adv + r1_gamma / 2 * r1``, and the real/fake
    accuracies ``d_real_acc``, ``d_fake_acc`` (no gradient).

    Args:
        s, x_t: ``[B, V, 3]`` normalised; s_label: ``[B]``.
    """
    d, r1_gamma = module.discriminator, module.loss_config.r1_gamma
    real = s.detach().requires_grad_(r1_gamma > 0)
    real_logits = d.select(d(real)[0].float(), s_label)
    fake_logits = d.select(d(x_t)[0].float(), s_label)
    terms = {"d_adv": losses.discriminator_adversarial_loss(real_logits, fake_logits)}
    if r1_gamma > 0:
        terms["r1"] = r1_penalty(real, real_logits, grad_scaler(module)).mean()
    terms["d_total"] = terms["d_adv"] + 0.5 * r1_gamma * terms.get("r1", 0.0)
    terms["d_real_acc"] = (real_logits.detach() > 0).float().mean()
    terms["d_fake_acc"] = (fake_logits.detach() < 0).float().mean()
    return terms
