"""The face regressor's loss: weighted mean squared error of the standardised targets (params + landmarks)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch

from facegen.config.blocks import block, plain
from facegen.errors import ConfigError, DatasetLayoutError
from facegen.models.face_regressor.network import N_LANDMARKS, FaceRegressor
from facegen.shapes import assert_shape


@dataclass(frozen=True)
class LossWeights:
    """Weight of each target group's MSE (``model.loss``; standardised units, so the groups are comparable).

    Attributes:
        identity, expression, albedo, sh_coeffs, rotation, translation: parameter groups of
            :mod:`facegen.morphable.params`.
        landmarks: the 68 landmarks (x, y in pixels before standardisation).
    """

    identity: float = 1.0
    expression: float = 2.0
    albedo: float = 0.25
    sh_coeffs: float = 0.25
    rotation: float = 1.0
    translation: float = 0.5
    landmarks: float = 2.0

    def check(self, where: str) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        negative = [k for k, v in values.items() if v < 0]
        if negative:
            raise ConfigError(f"{where}.{negative[0]}: a loss weight must be >= 0, got {values[negative[0]]}")
        if sum(values.values()) <= 0:
            raise ConfigError(f"{where}: at least one loss weight must be > 0")


#: the default weights as a dict (kept for callers of the old module)
DEFAULT_WEIGHTS: dict[str, float] = plain(LossWeights())


def regressor_loss(model: FaceRegressor, images: torch.Tensor, params: torch.Tensor, landmarks: torch.Tensor,
                   weights: Mapping[str, float] | LossWeights | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``sum_g weight_g MSE_g / sum_g weight_g`` over the standardised target groups; returns ``(loss, MSE_g)``.

    Args:
        model: the network (its ``target_mean``/``target_std`` standardise the targets).
        images: ``[B, C, R, R]`` in [-1, 1] at the model's resolution.
        params: ``[B, P]`` ground-truth parameters; landmarks: ``[B, 68, 2]`` pixels at ``R``.
        weights: :class:`LossWeights` or a mapping of some of its keys (others keep the defaults).

    Raises:
        DatasetLayoutError: ``params`` or ``landmarks`` of the wrong shape.
        ConfigError: an unknown weight name.
    """
    weights = plain(block(LossWeights, weights, "model.loss"))
    assert_shape(params, [images.shape[0], model.n_params], "face regressor params", error=DatasetLayoutError)
    assert_shape(landmarks, [images.shape[0], N_LANDMARKS, 2], "face regressor landmarks", error=DatasetLayoutError,
                 hint="pixels at the network's resolution")
    error = (model(images) - model.normalise(params, landmarks)).pow(2)
    terms = {name: error[:, s].mean() for name, s in model.slices.items()}
    total = sum(weights[name] * terms[name] for name in terms) / sum(weights[name] for name in terms)
    return total, terms
