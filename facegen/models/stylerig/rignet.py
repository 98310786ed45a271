"""RigNet: edit a StyleGAN latent so that its face takes given morphable-model parameters (StyleRig sec. 5).

For every W+ layer ``i`` that a control may change, an encoder compresses ``w_i`` (``w_dim``, 512 in
the paper) to ``l_i`` (32) and a decoder maps ``[l_i, p]`` to ``delta w_i``; ``w_hat = w + delta w``
(Tewari et al. 2020, sec. 5, Fig. 2). Layers outside the control's mask have no encoder/decoder and
keep ``delta w_i = 0`` exactly. ``p`` enters restricted to the controlled parameter block (rotation for
pose, expression coefficients, ``sh_coeffs`` for illumination), so a RigNet cannot read the other blocks.

Our choices where the paper gives no number: the decoder is a 2-layer perceptron (ELU, hidden width
``w_dim``) whose last layer is zero-initialised, so an untrained RigNet is the identity edit; the
encoder is linear.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from facegen.errors import StyleGANInputError
from facegen.morphable.params import ParamLayout
from facegen.shapes import assert_shape

#: parameter parts of each control; ``all`` is the joint rig
CONTROL_PARTS: dict[str, tuple[str, ...]] = {
    "pose": ("rotation",),
    "expression": ("expression",),
    "illumination": ("sh_coeffs",),
    "all": ("rotation", "expression", "sh_coeffs"),
}
#: W+ layers each control may change by default (StyleRig Fig. 4: coarse = pose, coarse-to-medium =
#: expression, medium-to-fine = illumination); "a-b" inclusive, "a-" to the last layer
DEFAULT_CONTROL_LAYERS: dict[str, str] = {"pose": "0-3", "expression": "0-6", "illumination": "4-", "all": "0-"}


def parse_layers(spec: str | int | Sequence[int], num_ws: int, label: str = "layers") -> list[int]:
    """W+ layer indices from ``"0-3"`` (inclusive), ``"4-"`` (to the end), ``"all"``, an int or a list.

    Raises:
        StyleGANInputError: a malformed spec, an index outside ``0..num_ws-1`` or an empty selection.
    """
    if isinstance(spec, int):
        layers = [spec]
    elif isinstance(spec, str):
        text = spec.strip()
        if text == "all":
            layers = list(range(num_ws))
        else:
            layers = []
            for piece in text.split(","):
                first, dash, last = piece.strip().partition("-")
                try:
                    a = int(first)
                    b = (int(last) if last.strip() else num_ws - 1) if dash else a
                except ValueError as error:
                    raise StyleGANInputError(f"{label}: cannot parse {spec!r}; expected e.g. '0-3', '4-', 'all' "
                                             "or a list of indices") from error
                layers += list(range(a, b + 1))
    else:
        layers = [int(i) for i in spec]
    layers = sorted(set(layers))
    if not layers or layers[0] < 0 or layers[-1] >= num_ws:
        raise StyleGANInputError(f"{label}: {spec!r} selects {layers}; expected a non-empty subset of 0..{num_ws - 1}")
    return layers


def control_slices(layout: ParamLayout, control: str) -> list[slice]:
    """Slices of ``p [B, P]`` that ``control`` edits. Raises StyleGANInputError for an unknown control."""
    if control not in CONTROL_PARTS:
        raise StyleGANInputError(f"unknown StyleRig control {control!r}; expected one of {sorted(CONTROL_PARTS)}")
    return [layout.slices[part] for part in CONTROL_PARTS[control]]


def control_mask(layout: ParamLayout, control: str) -> torch.Tensor:
    """``[P]`` bool, True on the parameters ``control`` edits."""
    mask = torch.zeros(layout.dim, dtype=torch.bool)
    for s in control_slices(layout, control):
        mask[s] = True
    return mask


def swap_block(p_into: torch.Tensor, p_from: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``p_into`` with the parameters where ``mask [P]`` is True taken from ``p_from`` (both ``[B, P]``).

    StyleRig's ``p_edit`` (``p_v`` with the controlled block of ``p_hat``) and ``p_consist``
    (``p_hat`` with the controlled block of ``p_w``). Differentiable w.r.t. both.
    """
    return torch.where(mask.to(p_into.device), p_from, p_into)


class _LayerLinear(nn.Module):
    """One independent linear map per layer: ``[B, L, I] -> [B, L, O]`` (PyTorch ``nn.Linear`` init per layer)."""

    def __init__(self, layers: int, in_features: int, out_features: int, zero: bool = False):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(layers, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(layers, out_features).uniform_(-bound, bound))
        if zero:
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bli,lio->blo", x, self.weight) + self.bias


class RigNet(nn.Module):
    """``w_hat = w + delta w(w, p)`` for one control (StyleRig sec. 5).

    Args:
        num_ws, w_dim: W+ shape.
        layout: the parameter layout of ``p`` (:class:`ParamLayout`, from the DFR).
        control: ``pose``, ``expression``, ``illumination`` or ``all`` (:data:`CONTROL_PARTS`).
        layers: W+ layers this control may change (:func:`parse_layers` spec; default
            :data:`DEFAULT_CONTROL_LAYERS`).
        latent_dim: size of ``l_i`` (32 in the paper).
        decoder_hidden: hidden width of the per-layer decoder (default ``w_dim``).
    """

    def __init__(self, num_ws: int, w_dim: int, layout: ParamLayout, control: str,
                 layers: str | Sequence[int] | None = None, latent_dim: int = 32, decoder_hidden: int | None = None):
        super().__init__()
        self.num_ws, self.w_dim, self.layout, self.control = int(num_ws), int(w_dim), layout, control
        self.register_buffer("param_mask", control_mask(layout, control), persistent=False)
        self.layers = parse_layers(DEFAULT_CONTROL_LAYERS[control] if layers is None else layers, num_ws,
                                   f"RigNet {control} layers")
        self.register_buffer("layer_index", torch.tensor(self.layers, dtype=torch.long), persistent=False)
        n_ctrl = int(self.param_mask.sum())
        hidden = int(decoder_hidden or w_dim)
        n = len(self.layers)
        self.encoder = _LayerLinear(n, w_dim, latent_dim)                      # w_i -> l_i
        self.decoder = nn.Sequential(_LayerLinear(n, latent_dim + n_ctrl, hidden), nn.ELU(),
                                     _LayerLinear(n, hidden, w_dim, zero=True))  # [l_i, p] -> delta w_i

    def delta(self, w_plus: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``delta w [B, num_ws, w_dim]`` (zero outside :attr:`layers`) for W+ ``w_plus`` and full ``p [B, P]``.

        Raises:
            StyleGANInputError: wrong shapes.
        """
        assert_shape(w_plus, ["B", self.num_ws, self.w_dim], "RigNet w_plus", error=StyleGANInputError)
        assert_shape(p, [w_plus.shape[0], self.layout.dim], "RigNet p", error=StyleGANInputError,
                     hint="one parameter vector per latent (ParamLayout of the DFR)")
        selected = w_plus.index_select(1, self.layer_index)                    # [B, n, w_dim]
        latent = self.encoder(selected)                                        # [B, n, 32]
        target = p[:, self.param_mask]                                         # [B, P_ctrl]
        x = torch.cat([latent, target[:, None].expand(-1, len(self.layers), -1)], dim=-1)
        d = self.decoder(x)                                                    # [B, n, w_dim]
        out = w_plus.new_zeros(w_plus.shape)
        return out.index_copy(1, self.layer_index, d)

    def forward(self, w_plus: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``w_hat = w_plus + delta(w_plus, p)``: ``[B, num_ws, w_dim]``."""
        return w_plus + self.delta(w_plus, p)


class RigNets(nn.ModuleDict):
    """One :class:`RigNet` per control, keyed by the control name (the ``model.network`` block of ``StyleRig``).

    Args:
        num_ws, w_dim: W+ shape of the generator (set by the module from ``G``).
        n_id, n_exp, n_alb: coefficient counts of the DFR's :class:`ParamLayout` (set by the module).
        controls: RigNets to build, in training order (``pose``, ``expression``, ``illumination``; ``all`` = one
            joint rig over the three blocks).
        control_layers: W+ layers per control (:func:`parse_layers` specs such as ``"0-3"``); controls not named
            keep :data:`DEFAULT_CONTROL_LAYERS` (StyleRig Fig. 4).
        latent_dim: size of ``l_i`` (32 in the paper).
        decoder_hidden: hidden width of the per-layer decoders (``None`` = ``w_dim``).

    Raises:
        StyleGANInputError: no control, an unknown control, or a bad layer spec.
    """

    def __init__(self, num_ws: int, w_dim: int, n_id: int, n_exp: int, n_alb: int,
                 controls: Sequence[str] = ("pose", "expression", "illumination"),
                 control_layers: Mapping[str, str | Sequence[int]] | None = None, latent_dim: int = 32,
                 decoder_hidden: int | None = None):
        layers = dict(control_layers or {})
        unknown = set(layers) - set(CONTROL_PARTS)
        if unknown:
            raise StyleGANInputError(f"control_layers has unknown controls {sorted(unknown)}; "
                                     f"expected {sorted(CONTROL_PARTS)}")
        if not controls:
            raise StyleGANInputError("StyleRig needs at least one control (pose, expression, illumination or all)")
        layout = ParamLayout(int(n_id), int(n_exp), int(n_alb))
        super().__init__({c: RigNet(num_ws, w_dim, layout, c, layers.get(c), latent_dim, decoder_hidden)
                          for c in controls})
        self.controls = [str(c) for c in controls]


def build_rignets(num_ws: int, w_dim: int, layout: ParamLayout, controls: Sequence[str],
                  layers: Mapping[str, str | Sequence[int]] | None = None, latent_dim: int = 32,
                  decoder_hidden: int | None = None) -> RigNets:
    """:class:`RigNets` for a :class:`ParamLayout` (``layers[control]`` overrides its default mask)."""
    return RigNets(num_ws, w_dim, layout.n_id, layout.n_exp, layout.n_alb, controls, layers, latent_dim,
                   decoder_hidden)
