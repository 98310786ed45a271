"""DFR, StyleRig's differentiable face reconstruction network ``F: w -> p`` (Tewari et al., CVPR 2020, sec. 4).

``F`` reads a StyleGAN latent in W+ (``[B, num_ws, w_dim]``, flattened to ``num_ws * w_dim``) and
returns the morphable-model parameter vector ``p [B, P]`` in the layout of
:class:`facegen.morphable.params.ParamLayout` (identity, expression, albedo, 27 ``sh_coeffs``, rotation,
translation). As in the paper it is a fully connected network with an ELU after every hidden layer;
it never sees the image: the image ``G(w)`` is only used by the self-supervised losses
(:mod:`facegen.models.stylerig.losses`).

Choices of ours that the paper does not state: the input is centred on the generator's ``w_avg``
(``w - w_avg``); the last linear layer is zero-initialised and multiplied by a fixed per-part scale
(radians for rotation, mm for translation, coefficient units otherwise), so that an untrained ``F``
predicts the mean, frontal face and every part starts at a similar step size; and for blendshape rigs
(procedural face, ICT-FaceKit: activations in [0, 1]) ``expression_bounds`` maps the expression outputs
through ``lo + (hi - lo) * sigmoid(x + logit(0.02))`` (2% activation at the start), as analysis-by-synthesis
fitting bounds them (:class:`facegen.render.fitting.FitConfig` ``exp_bounds``). The paper's BFM
expression space is an unbounded PCA (``expression_bounds=None``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from facegen.errors import StyleGANInputError
from facegen.morphable.params import PARTS, ParamLayout
from facegen.shapes import assert_shape

#: default output scale per parameter part (units of one network output unit)
DEFAULT_OUTPUT_SCALE: dict[str, float] = {"identity": 1.0, "expression": 0.5, "albedo": 1.0, "sh_coeffs": 0.2,
                                          "rotation": 0.3, "translation": 10.0}


class DFRNetwork(nn.Module):
    """``F``: flattened W+ latent -> morphable-model parameters (StyleRig sec. 4, "DFR").

    Args:
        num_ws, w_dim: W+ shape of the generator (``G.num_ws``, ``G.w_dim``).
        n_id, n_exp, n_alb: coefficient counts of the morphable model (``ParamLayout``).
        hidden: widths of the hidden layers (ELU after each); the paper's network has 2 hidden layers.
        output_scale: per-part scale of the zero-initialised output layer (:data:`DEFAULT_OUTPUT_SCALE`).
        expression_bounds: ``(lo, hi)`` of the expression coefficients, or ``None`` for unbounded.

    Buffers: ``w_avg [w_dim]`` (input centre, set from the generator), ``scale [P]``.
    """

    def __init__(self, num_ws: int, w_dim: int, n_id: int, n_exp: int, n_alb: int,
                 hidden: Sequence[int] = (1024, 512), output_scale: Mapping[str, float] | None = None,
                 expression_bounds: Sequence[float] | None = None):
        super().__init__()
        self.num_ws, self.w_dim = int(num_ws), int(w_dim)
        self.layout = ParamLayout(int(n_id), int(n_exp), int(n_alb))
        self.hidden = [int(h) for h in hidden]
        scales = {**DEFAULT_OUTPUT_SCALE, **dict(output_scale or {})}
        unknown = set(scales) - set(PARTS)
        if unknown:
            raise StyleGANInputError(f"DFR output_scale has unknown parts {sorted(unknown)}; expected {PARTS}")
        self.output_scale = {k: float(scales[k]) for k in PARTS}
        self.expression_bounds = None if expression_bounds is None else tuple(float(b) for b in expression_bounds)
        if self.expression_bounds is not None and not self.expression_bounds[0] < self.expression_bounds[1]:
            raise StyleGANInputError(f"DFR expression_bounds must be (lo, hi) with lo < hi, got {expression_bounds}")
        layers: list[nn.Module] = []
        width = self.num_ws * self.w_dim
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ELU()]
            width = h
        out = nn.Linear(width, self.layout.dim)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        layers.append(out)
        self.net = nn.Sequential(*layers)
        scale = torch.cat([torch.full((size,), self.output_scale[name]) for name, size in self.layout.sizes.items()])
        self.register_buffer("scale", scale)
        self.register_buffer("w_avg", torch.zeros(self.w_dim))

    def config(self) -> dict:
        """Constructor arguments that rebuild this network (stored in checkpoints)."""
        return {"num_ws": self.num_ws, "w_dim": self.w_dim, "n_id": self.layout.n_id, "n_exp": self.layout.n_exp,
                "n_alb": self.layout.n_alb, "hidden": list(self.hidden), "output_scale": dict(self.output_scale),
                "expression_bounds": None if self.expression_bounds is None else list(self.expression_bounds)}

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        """``w_plus [B, num_ws, w_dim]`` -> ``p [B, P]`` (``P = layout.dim``).

        Raises:
            StyleGANInputError: ``w_plus`` is not ``[B, num_ws, w_dim]``.
        """
        assert_shape(w_plus, ["B", self.num_ws, self.w_dim], "DFR w_plus", error=StyleGANInputError,
                     hint="W+ latents of the generator F was built for")
        x = (w_plus - self.w_avg).flatten(1)                              # [B, num_ws * w_dim]
        p = self.net(x) * self.scale                                      # [B, P]
        if self.expression_bounds is None:
            return p
        lo, hi = self.expression_bounds
        s = self.layout.expression
        expression = lo + (hi - lo) * torch.sigmoid(p[:, s] + math.log(0.02 / 0.98))
        return torch.cat([p[:, :s.start], expression, p[:, s.stop:]], dim=1)
