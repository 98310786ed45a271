"""Spiral mesh convolution and mesh pooling (SpiralNet++, Gong et al. 2019), and the FaceTuneGAN blocks.

Features on a mesh are ``[B, V, C]``. A spiral convolution gathers, for every vertex, the features of
the ``L`` vertices of its spiral (``spiral_indices [V, L]``, the vertex itself first) and applies one
linear layer to the concatenated ``L * C_in`` values (reference: sw-gong/spiralnet_plus
``conv/spiralconv.py``). Pooling multiplies by a sparse ``[V_out, V_in]`` transform: the CoMA
down-sampling matrix (selects kept vertices) or up-sampling matrix (barycentric weights)
(reference: sw-gong/spiralnet_plus ``reconstruction/network.py`` ``Pool``).

:class:`SpiralBlock` and :class:`SpiralResBlock` are FaceTuneGAN's building blocks
(Olivier et al. 2023, Fig. 3): optional up-pool, spiral conv, normalisation, ELU, optional down-pool.

Shapes are checked at every public ``__init__``/``forward`` with :func:`facegen.shapes.assert_shape`
(raising :class:`~facegen.errors.FacegenError`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facegen.errors import FacegenError
from facegen.nn.adain import AdaIN, InstanceNorm
from facegen.shapes import assert_shape

NORMS = ("none", "instance", "adain")


class SpiralConv(nn.Module):
    """Spiral convolution: ``y_v = W [x_{s(v,0)}, ..., x_{s(v,L-1)}] + b`` for every vertex ``v``.

    Args:
        in_channels, out_channels: feature widths ``C_in``, ``C_out``.
        spiral_indices: ``[V, L]`` int64, the spiral of each vertex (from
            ``facegen.geometry.spiral_indices``); kept as a non-persistent buffer (it is rebuilt from
            the template, not stored in checkpoints).
    Raises:
        FacegenError: ``spiral_indices`` is not a ``[V, L]`` integer tensor.
    """

    def __init__(self, in_channels: int, out_channels: int, spiral_indices: torch.Tensor) -> None:
        super().__init__()
        assert_shape(spiral_indices, ["V", "L"], "SpiralConv spiral_indices", error=FacegenError)
        if spiral_indices.is_floating_point():
            raise FacegenError(f"SpiralConv spiral_indices: expected an integer tensor [V, L], got {spiral_indices.dtype}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.register_buffer("spiral_indices", spiral_indices.long().contiguous(), persistent=False)
        self.layer = nn.Linear(in_channels * spiral_indices.shape[1], out_channels)

    @property
    def num_vertices(self) -> int:
        return self.spiral_indices.shape[0]

    @property
    def seq_length(self) -> int:
        return self.spiral_indices.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, V, C_in]`` -> ``[B, V, C_out]``.

        Raises:
            FacegenError: ``x`` is not ``[B, V, C_in]`` with this layer's ``V`` and ``C_in``.
        """
        assert_shape(x, ["B", self.num_vertices, self.in_channels], "SpiralConv x", error=FacegenError,
                     hint="features [B, V, C_in]")
        batch, vertices, _ = x.shape
        gathered = x.index_select(1, self.spiral_indices.view(-1)).reshape(batch, vertices, -1)
        return self.layer(gathered)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, vertices={self.num_vertices}, seq_length={self.seq_length}"


class Pool(nn.Module):
    """Mesh pooling ``y = T x`` with a fixed sparse transform ``T [V_out, V_in]`` applied per sample.

    The transform is stored as dense ``row``/``col``/``value`` buffers (a gather and an
    ``index_add_``), which move with ``.to()``, broadcast under DDP and run under autocast.

    Args:
        transform: sparse COO (or dense) ``[V_out, V_in]`` float tensor, e.g. ``MeshHierarchy.down_transform[i]``.
    Raises:
        FacegenError: ``transform`` is not a matrix.
    """

    def __init__(self, transform: torch.Tensor) -> None:
        super().__init__()
        assert_shape(transform, ["V_out", "V_in"], "Pool transform", error=FacegenError)
        sparse = (transform if transform.is_sparse else transform.to_sparse()).coalesce()
        row, col = sparse.indices()
        self.num_out, self.num_in = int(sparse.shape[0]), int(sparse.shape[1])
        self.register_buffer("row", row.clone(), persistent=False)
        self.register_buffer("col", col.clone(), persistent=False)
        self.register_buffer("value", sparse.values().float().clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, V_in, C]`` -> ``[B, V_out, C]``.

        Raises:
            FacegenError: ``x`` does not have ``V_in`` vertices.
        """
        assert_shape(x, ["B", self.num_in, "C"], "Pool x", error=FacegenError, hint="features [B, V_in, C]")
        weighted = x.index_select(1, self.col) * self.value.to(x.dtype).view(1, -1, 1)
        out = x.new_zeros(x.shape[0], self.num_out, x.shape[2])
        return out.index_add_(1, self.row, weighted)

    def extra_repr(self) -> str:
        return f"{self.num_in} -> {self.num_out}, nnz={self.value.numel()}"


def _make_norm(norm: str, channels: int) -> nn.Module:
    if norm == "instance":
        return InstanceNorm()
    if norm == "adain":
        return AdaIN(channels)
    if norm == "none":
        return nn.Identity()
    raise FacegenError(f"unknown norm {norm!r}; expected one of {NORMS}")


class SpiralBlock(nn.Module):
    """FaceTuneGAN SpiralBlock (Fig. 3a): [up-pool] -> SpiralConv -> norm -> ELU -> [down-pool].

    Args:
        in_channels, out_channels: feature widths.
        spiral_indices: ``[V, L]`` spirals of the level the convolution runs on (after the up-pool,
            before the down-pool).
        norm: ``"none"``, ``"instance"`` or ``"adain"``.
        up_transform: optional ``[V, V_coarse]`` transform applied before the convolution.
        down_transform: optional ``[V_coarse, V]`` transform applied after the activation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spiral_indices: torch.Tensor,
        norm: str = "none",
        up_transform: torch.Tensor | None = None,
        down_transform: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.up = Pool(up_transform) if up_transform is not None else None
        self.conv = SpiralConv(in_channels, out_channels, spiral_indices)
        self.norm = _make_norm(norm, out_channels)
        self.down = Pool(down_transform) if down_transform is not None else None

    @property
    def num_adain_params(self) -> int:
        """AdaIN parameters consumed by :meth:`forward` (0 unless ``norm="adain"``)."""
        return self.norm.num_params if isinstance(self.norm, AdaIN) else 0

    def forward(self, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[B, V_in, C_in]`` -> ``[B, V_out, C_out]``.

        ``adain_params``: ``[B, num_adain_params]`` laid out ``[gamma | beta]``; required iff ``norm="adain"``.

        Raises:
            FacegenError: ``x`` or ``adain_params`` has the wrong shape, or an AdaIN block gets no ``adain_params``.
        """
        if self.up is not None:
            x = self.up(x)
        x = _apply_norm(self.norm, self.conv(x), adain_params)
        x = F.elu(x)
        if self.down is not None:
            x = self.down(x)
        return x


class SpiralResBlock(nn.Module):
    """FaceTuneGAN SpiralResBlock (Fig. 3b): ``x + norm(conv(ELU(norm(conv(x)))))`` at a fixed width.

    The residual form follows FUNIT's ``ResBlock`` (conv-norm-act, conv-norm, identity skip).

    Args:
        channels: feature width ``C`` (input = output).
        spiral_indices: ``[V, L]`` spirals of the block's level.
        norm: ``"none"``, ``"instance"`` or ``"adain"`` (both convolutions).
    """

    def __init__(self, channels: int, spiral_indices: torch.Tensor, norm: str = "none") -> None:
        super().__init__()
        self.conv1 = SpiralConv(channels, channels, spiral_indices)
        self.norm1 = _make_norm(norm, channels)
        self.conv2 = SpiralConv(channels, channels, spiral_indices)
        self.norm2 = _make_norm(norm, channels)

    @property
    def num_adain_params(self) -> int:
        """AdaIN parameters consumed by :meth:`forward`: ``[gamma1 | beta1 | gamma2 | beta2]`` or 0."""
        return sum(n.num_params for n in (self.norm1, self.norm2) if isinstance(n, AdaIN))

    def forward(self, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[B, V, C]`` -> ``[B, V, C]``; ``adain_params``: ``[B, num_adain_params]`` for AdaIN.

        Raises:
            FacegenError: ``x`` or ``adain_params`` has the wrong shape, or an AdaIN block gets no ``adain_params``.
        """
        first = second = None
        if adain_params is not None:
            assert_shape(adain_params, [x.shape[0], self.num_adain_params], "SpiralResBlock adain_params",
                         error=FacegenError, hint="[gamma1 | beta1 | gamma2 | beta2]")
            first, second = adain_params.chunk(2, dim=1)
        h = F.elu(_apply_norm(self.norm1, self.conv1(x), first))
        return x + _apply_norm(self.norm2, self.conv2(h), second)


def _apply_norm(norm: nn.Module, x: torch.Tensor, adain_params: torch.Tensor | None) -> torch.Tensor:
    if isinstance(norm, AdaIN):
        if adain_params is None:
            raise FacegenError(f"adain_params: an AdaIN block needs [B, {norm.num_params}] ([gamma | beta]), got None")
        assert_shape(adain_params, [x.shape[0], norm.num_params], "adain_params", error=FacegenError,
                     hint="[gamma | beta] of an AdaIN block")
        gamma, beta = adain_params.chunk(2, dim=1)
        return norm(x, gamma, beta)
    return norm(x)
