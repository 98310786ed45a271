"""Instance normalisation and adaptive instance normalisation over the vertices of a mesh.

Mesh features are laid out ``[B, V, C]`` (batch, vertices, channels); the statistics of a channel
are taken over the vertices of one sample, as image instance norm takes them over the pixels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facegen.errors import FacegenError
from facegen.shapes import assert_shape


def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise each channel of each sample to zero mean and unit variance over the vertices.

    ``(x - mean_V(x)) / sqrt(var_V(x) + eps)`` with the biased variance, i.e.
    :func:`torch.nn.functional.instance_norm` (no affine part) applied to ``[B, C, V]``.

    Args:
        x: ``[B, V, C]`` features.
    Returns:
        ``[B, V, C]``, same dtype as ``x``.
    Raises:
        FacegenError: ``x`` is not ``[B, V, C]``.
    """
    assert_shape(x, ["B", "V", "C"], "instance_norm x", error=FacegenError, hint="mesh features [B, V, C]")
    return F.instance_norm(x.transpose(1, 2), eps=eps).transpose(1, 2)


class InstanceNorm(nn.Module):
    """Mesh instance normalisation without learned affine parameters (FUNIT's ``norm='in'``)."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, V, C]`` -> ``[B, V, C]``."""
        return instance_norm(x, self.eps)


class AdaIN(nn.Module):
    """Adaptive instance normalisation, FaceTuneGAN eq. (2) (Huang & Belongie 2017).

    ``AdaIN(x, y) = M_sigma(y) * (x - mu(x)) / sigma(x) + M_mu(y)``: the per-sample, per-channel
    scale ``gamma = M_sigma(y)`` and shift ``beta = M_mu(y)`` come from the style mapping network
    (see :class:`facegen.models.facetunegan.networks.StyleMapping`); this layer holds no parameters.

    Args:
        num_features: channel count ``C``; the layer consumes ``2 * C`` AdaIN parameters.
        eps: added to the variance before the square root.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    @property
    def num_params(self) -> int:
        """Number of AdaIN parameters this layer takes from the mapping network (``gamma`` and ``beta``)."""
        return 2 * self.num_features

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` over vertices, then scale by ``gamma`` and shift by ``beta``.

        Args:
            x: ``[B, V, C]`` features.
            gamma, beta: ``[B, C]`` per-sample channel scale and shift.
        Returns:
            ``[B, V, C]``.
        Raises:
            FacegenError: ``x`` is not ``[B, V, C]``, or ``gamma``/``beta`` are not ``[B, C]`` for it.
        """
        assert_shape(x, ["B", "V", self.num_features], "AdaIN x", error=FacegenError, hint="features [B, V, C]")
        for name, value in (("gamma", gamma), ("beta", beta)):
            assert_shape(value, [x.shape[0], self.num_features], f"AdaIN {name}", error=FacegenError,
                         hint="[B, C], one scale/shift per sample and channel")
        return gamma.unsqueeze(1) * instance_norm(x, self.eps) + beta.unsqueeze(1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"
