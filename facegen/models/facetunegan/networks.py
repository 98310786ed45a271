"""FaceTuneGAN networks (Olivier et al. 2023, sec. 3.2 and appendix A): encoders, mapping, decoder, discriminator.

All networks work on meshes of one fixed topology, ``[B, V, 3]`` (normalised per-vertex coordinates in
:class:`~facegen.models.facetunegan.FaceTuneGAN`), and on a CoMA-style mesh hierarchy: any object with
``spiral_indices`` (``[V_i, L]`` per level), ``down_transform`` (``[V_{i+1}, V_i]``) and
``up_transform`` (``[V_i, V_{i+1}]``) lists, such as :class:`facegen.geometry.MeshHierarchy`.
A network with ``n`` blocks works on levels ``0..n``; the hierarchy needs at least ``n`` down-samplings.

The paper's figures 9/10 give the layer composition per dataset; the widths here are keyword arguments
(the ``model.generator`` / ``model.discriminator`` blocks of conf/model/facetunegan.yaml and
conf/experiment/facetunegan_*.yaml; defaults = the paper's CoMA setting). Choices the paper leaves
open, following FUNIT (Liu et al. 2019, NVlabs/FUNIT ``networks.py``):
- hidden linear layers use ReLU; the layer producing a code (content, style, AdaIN parameters,
  decoder features) and the discriminator's classifier are linear, and the discriminator outputs
  logits (the paper's softmax is replaced by one logistic real/fake output per style class, as FUNIT);
- the decoder's up-sampling SpiralBlocks after the first use no normalisation;
- weights are Kaiming-normal (fan-in, ReLU gain), biases zero; the mapping's last bias starts at
  ``gamma = 1, beta = 0`` so that the decoder starts as plain instance normalisation.

Shapes are checked at each network's ``forward`` (:func:`facegen.shapes.assert_shape`, raising
:class:`~facegen.errors.FacegenError`).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from facegen.errors import ConfigError, FacegenError
from facegen.nn import AdaIN, SpiralBlock, SpiralConv, SpiralResBlock
from facegen.shapes import assert_shape

COMA_CHANNELS = (16, 32, 32, 64)
OUTPUT_INITS = ("kaiming", "zero")


def mlp(dims: Sequence[int]) -> nn.Sequential:
    """Linear layers ``dims[0] -> ... -> dims[-1]`` with ReLU between them and none after the last."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal weights (fan-in, ReLU gain) and zero biases for every linear layer (paper sec. 4.2)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def _check_levels(hierarchy, num_blocks: int, what: str) -> None:
    available = len(hierarchy.down_transform)
    if num_blocks < 1 or num_blocks > available:
        raise FacegenError(
            f"{what}: {num_blocks} down-sampling blocks need 1..{available} hierarchy levels "
            f"(the mesh hierarchy has {available} down_transform matrices); shorten the channel list"
        )


def _num_vertices(hierarchy, level: int) -> int:
    return int(hierarchy.spiral_indices[level].shape[0])


def _check_mesh(x: torch.Tensor, num_vertices: int, name: str) -> None:
    assert_shape(x, ["B", num_vertices, 3], name, error=FacegenError, hint="meshes [B, V, 3] of the template's topology")


def down_blocks(hierarchy, channels: Sequence[int], norm: str, what: str) -> nn.ModuleList:
    """SpiralBlocks from 3 input channels to ``channels[-1]``, each followed by a x4 down-sampling.

    Block ``i`` convolves on level ``i`` of ``hierarchy`` and pools to level ``i + 1``; shared by the content
    encoder (``norm="instance"``), the style encoder and the discriminator (``norm="none"``).
    """
    _check_levels(hierarchy, len(channels), what)
    widths = [3, *channels]
    return nn.ModuleList(
        SpiralBlock(widths[i], widths[i + 1], hierarchy.spiral_indices[i], norm,
                    down_transform=hierarchy.down_transform[i])
        for i in range(len(channels))
    )


class ContentEncoder(nn.Module):
    """``E_c``: down-sampling SpiralBlocks (instance norm), two SpiralResBlocks, flatten, MLP.

    Args:
        hierarchy: mesh hierarchy (see module docstring).
        channels: SpiralBlock widths, one per down-sampling level.
        content_dim: size of ``content_code``.
        hidden: MLP hidden widths between the flattened features and the code.
        skip: add a linear map from the input mesh straight to the code (``[B, V * 3] -> [B, content_dim]``,
            not in the paper; :class:`Generator` starts it at zero): a PCA-like read-out of the identity
            modes beside the instance-normalised spiral path, which discards each channel's global
            scale and offset.
    """

    def __init__(self, hierarchy, *, channels: Sequence[int], content_dim: int, hidden: Sequence[int] = (),
                 skip: bool = False) -> None:
        super().__init__()
        self.num_vertices = _num_vertices(hierarchy, 0)
        self.blocks = down_blocks(hierarchy, channels, "instance", "ContentEncoder")
        coarse = hierarchy.spiral_indices[len(channels)]
        self.res_blocks = nn.ModuleList(SpiralResBlock(channels[-1], coarse, "instance") for _ in range(2))
        self.mlp = mlp([coarse.shape[0] * channels[-1], *hidden, content_dim])
        self.skip = nn.Linear(self.num_vertices * 3, content_dim) if skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, V, 3]`` -> ``content_code [B, content_dim]``.

        Raises:
            FacegenError: ``x`` is not ``[B, V, 3]`` with the hierarchy's ``V``.
        """
        _check_mesh(x, self.num_vertices, "ContentEncoder x")
        mesh = x
        for block in (*self.blocks, *self.res_blocks):
            x = block(x)
        code = self.mlp(x.flatten(1))
        return code if self.skip is None else code + self.skip(mesh.flatten(1))


class StyleEncoder(nn.Module):
    """``E_s``: down-sampling SpiralBlocks without normalisation, mean over vertices, MLP.

    Args:
        hierarchy: mesh hierarchy.
        channels: SpiralBlock widths, one per down-sampling level.
        style_dim: size of ``style_code``.
        hidden: MLP hidden widths.
    """

    def __init__(self, hierarchy, *, channels: Sequence[int], style_dim: int, hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.num_vertices = _num_vertices(hierarchy, 0)
        self.blocks = down_blocks(hierarchy, channels, "none", "StyleEncoder")
        self.mlp = mlp([channels[-1], *hidden, style_dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, V, 3]`` -> ``style_code [B, style_dim]``.

        Raises:
            FacegenError: ``x`` is not ``[B, V, 3]`` with the hierarchy's ``V``.
        """
        _check_mesh(x, self.num_vertices, "StyleEncoder x")
        for block in self.blocks:
            x = block(x)
        return self.mlp(x.mean(dim=1))


class StyleMapping(nn.Module):
    """``M``: style code -> all AdaIN parameters of the decoder (paper appendix A).

    CoMA: ``4 -> 128 -> 128 -> 16 -> N_AdaIN``; FaceScape: ``5 -> 256 x 6 -> 16 -> N_AdaIN``.

    Args:
        style_dim: size of ``style_code``.
        hidden: hidden widths (ReLU after each).
        adain_channels: channel count of each AdaIN layer in decoder order; the output is, per layer,
            ``[gamma (C) | beta (C)]``, concatenated: ``N_AdaIN = 2 * sum(adain_channels)``.
    """

    def __init__(self, style_dim: int, hidden: Sequence[int], adain_channels: Sequence[int]) -> None:
        super().__init__()
        self.style_dim = style_dim
        self.num_adain_params = 2 * sum(adain_channels)
        self.net = mlp([style_dim, *hidden, self.num_adain_params])
        kaiming_init(self)
        gamma_mask = torch.cat([torch.cat([torch.ones(c), torch.zeros(c)]) for c in adain_channels])
        with torch.no_grad():
            self.net[-1].bias.copy_(gamma_mask)

    def forward(self, style_code: torch.Tensor) -> torch.Tensor:
        """``style_code [B, style_dim]`` -> ``adain_params [B, N_AdaIN]``.

        Raises:
            FacegenError: ``style_code`` is not ``[B, style_dim]``.
        """
        assert_shape(style_code, ["B", self.style_dim], "StyleMapping style_code", error=FacegenError)
        return self.net(style_code)


class Decoder(nn.Module):
    """``Dec``: MLP from the content code, two AdaIN SpiralResBlocks, up-sampling SpiralBlocks, output conv.

    The first up-sampling SpiralBlock uses AdaIN too (paper appendix A); the output is a linear
    SpiralConv to 3 coordinates.

    Args:
        hierarchy: mesh hierarchy.
        channels: the encoder's SpiralBlock widths (the decoder mirrors them).
        content_dim: size of ``content_code``.
        hidden: MLP hidden widths between the code and the coarsest features.
        skip: add a linear map from the content code straight to the full-resolution output
            (``[B, content_dim] -> [B, V, 3]``, not in the paper; :class:`Generator` starts it at zero). A
            linear path learns the dominant (linear) identity modes in a few hundred steps, which the
            spiral path alone cannot within a short CPU budget.
        style_dim, style_skip: with ``style_skip`` a second linear path, from the style code to the output
            (``[B, style_dim] -> [B, V, 3]``, not in the paper, started at zero): an additive expression
            offset, so that content + style start as a linear (blendshape-like) model and the AdaIN path
            learns how each identity performs an expression on top of it.
    """

    def __init__(self, hierarchy, *, channels: Sequence[int], content_dim: int, hidden: Sequence[int] = (),
                 skip: bool = False, style_dim: int = 0, style_skip: bool = False) -> None:
        super().__init__()
        n = len(channels)
        _check_levels(hierarchy, n, "Decoder")
        self.content_dim, self.style_dim = content_dim, style_dim
        self.coarse_shape = (_num_vertices(hierarchy, n), channels[-1])
        self.mlp = mlp([content_dim, *hidden, self.coarse_shape[0] * self.coarse_shape[1]])
        self.res_blocks = nn.ModuleList(
            SpiralResBlock(channels[-1], hierarchy.spiral_indices[n], "adain") for _ in range(2)
        )
        self.blocks = nn.ModuleList()
        for level in reversed(range(n)):
            c_in = channels[level + 1] if level + 1 < n else channels[-1]
            self.blocks.append(
                SpiralBlock(c_in, channels[level], hierarchy.spiral_indices[level],
                            "adain" if level == n - 1 else "none", up_transform=hierarchy.up_transform[level])
            )
        self.out_conv = SpiralConv(channels[0], 3, hierarchy.spiral_indices[0])
        self.skip = nn.Linear(content_dim, _num_vertices(hierarchy, 0) * 3) if skip else None
        if style_skip and style_dim <= 0:
            raise FacegenError(f"Decoder: style_skip needs style_dim > 0, got {style_dim}")
        self.style_skip = nn.Linear(style_dim, _num_vertices(hierarchy, 0) * 3) if style_skip else None

    @property
    def blocks_in_order(self) -> tuple[nn.Module, ...]:
        """The blocks in the order :meth:`forward` runs them (and consumes ``adain_params``)."""
        return (*self.res_blocks, *self.blocks)

    @property
    def adain_channels(self) -> list[int]:
        """Channel count of each AdaIN layer, in the order :meth:`forward` consumes ``adain_params``."""
        return [m.num_features for m in self.modules() if isinstance(m, AdaIN)]

    def forward(self, content_code: torch.Tensor, adain_params: torch.Tensor,
                style_code: torch.Tensor | None = None) -> torch.Tensor:
        """``content_code [B, content_dim]``, ``adain_params [B, N_AdaIN]`` (and ``style_code [B, style_dim]``
        for the ``style_skip`` path) -> ``[B, V, 3]``.

        Raises:
            FacegenError: a code or ``adain_params`` has the wrong shape, or the decoder has a ``style_skip``
                path and ``style_code`` is None.
        """
        assert_shape(content_code, ["B", self.content_dim], "Decoder content_code", error=FacegenError)
        assert_shape(adain_params, [content_code.shape[0], sum(b.num_adain_params for b in self.blocks_in_order)],
                     "Decoder adain_params", error=FacegenError, hint="[B, N_AdaIN] from the StyleMapping")
        x = self.mlp(content_code).view(-1, *self.coarse_shape)
        offset = 0
        for block in self.blocks_in_order:
            size = block.num_adain_params
            x = block(x, adain_params[:, offset:offset + size] if size else None)
            offset += size
        out = self.out_conv(x)
        if self.skip is not None:
            out = out + self.skip(content_code).view(out.shape)
        if self.style_skip is not None:
            if style_code is None:
                raise FacegenError("Decoder: this decoder has a style_skip path; pass style_code [B, style_dim]")
            assert_shape(style_code, [content_code.shape[0], self.style_dim], "Decoder style_code", error=FacegenError)
            out = out + self.style_skip(style_code).view(out.shape)
        return out


class Generator(nn.Module):
    """``G = (E_c, E_s, M, Dec)``: content encoder, style encoder, style mapping, decoder (paper Fig. 2).

    ``G(x, s) = Dec(E_c(x), M(E_s(s)))`` translates the content (identity) of ``x`` into the style
    (expression) of ``s``; ``G(x) = G(x, x)`` reconstructs ``x`` (eqs. 3-4).

    Every argument after ``hierarchy`` is keyword-only (the ``model.generator`` block); defaults are the
    paper's CoMA setting.

    Args:
        hierarchy: mesh hierarchy (see module docstring), built by the LightningModule from ``model.hierarchy``.
        channels: content encoder / decoder SpiralBlock widths, one per down-sampling level.
        style_channels: style encoder SpiralBlock widths.
        content_dim, style_dim: code sizes (CoMA 4/4, FaceScape 20/5).
        mapping_hidden: hidden widths of ``M`` (CoMA ``[128, 128, 16]``).
        content_hidden, style_hidden, decoder_hidden: MLP hidden widths of ``E_c``, ``E_s``, ``Dec``.
        output_init: ``"kaiming"`` (paper sec. 4.2, every layer) or ``"zero"`` (not in the paper): the decoder's
            output SpiralConv starts at zero, so the generator starts at the mean face (normalised 0) instead of
            high-frequency noise.
        decoder_skip: the decoder's linear content-to-output path (see :class:`Decoder`), initialised at zero.
        style_skip: the decoder's linear style-to-output path (see :class:`Decoder`), initialised at zero.
        content_skip: the content encoder's linear mesh-to-code path (see :class:`ContentEncoder`), at zero.
            The style encoder has none: a linear read-out there carries the source's identity into the style code.

    Raises:
        ConfigError: ``output_init`` is not one of :data:`OUTPUT_INITS`.
        FacegenError: the hierarchy has fewer levels than ``channels`` / ``style_channels`` have blocks.
    """

    def __init__(
        self,
        hierarchy,
        *,
        channels: Sequence[int] = COMA_CHANNELS,
        style_channels: Sequence[int] = COMA_CHANNELS,
        content_dim: int = 4,
        style_dim: int = 4,
        mapping_hidden: Sequence[int] = (128, 128, 16),
        content_hidden: Sequence[int] = (),
        style_hidden: Sequence[int] = (),
        decoder_hidden: Sequence[int] = (),
        output_init: str = "kaiming",
        decoder_skip: bool = False,
        style_skip: bool = False,
        content_skip: bool = False,
    ) -> None:
        super().__init__()
        if output_init not in OUTPUT_INITS:
            raise ConfigError(f"Generator: output_init={output_init!r}, expected one of {list(OUTPUT_INITS)}")
        self.content_dim, self.style_dim = content_dim, style_dim
        self.content_encoder = ContentEncoder(hierarchy, channels=channels, content_dim=content_dim,
                                              hidden=content_hidden, skip=content_skip)
        self.style_encoder = StyleEncoder(hierarchy, channels=style_channels, style_dim=style_dim, hidden=style_hidden)
        self.decoder = Decoder(hierarchy, channels=channels, content_dim=content_dim, hidden=decoder_hidden,
                               skip=decoder_skip, style_dim=style_dim, style_skip=style_skip)
        kaiming_init(self)
        for path in (self.decoder.skip, self.decoder.style_skip, self.content_encoder.skip):
            if path is not None:
                nn.init.zeros_(path.weight)
                nn.init.zeros_(path.bias)
        self.mapping = StyleMapping(style_dim, mapping_hidden, self.decoder.adain_channels)
        if output_init == "zero":
            nn.init.zeros_(self.decoder.out_conv.layer.weight)
            nn.init.zeros_(self.decoder.out_conv.layer.bias)

    def encode_content(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, V, 3]`` -> ``content_code [B, content_dim]``."""
        return self.content_encoder(x)

    def encode_style(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, V, 3]`` -> ``style_code [B, style_dim]``."""
        return self.style_encoder(x)

    def decode(self, content_code: torch.Tensor, style_code: torch.Tensor) -> torch.Tensor:
        """``content_code [B, content_dim]``, ``style_code [B, style_dim]`` -> mesh ``[B, V, 3]``."""
        return self.decoder(content_code, self.mapping(style_code), style_code)

    def forward(self, x: torch.Tensor, style_source: torch.Tensor | None = None) -> torch.Tensor:
        """Translate ``x [B, V, 3]`` into the style of ``style_source [B, V, 3]`` (default: ``x`` itself)."""
        style = x if style_source is None else style_source
        return self.decode(self.encode_content(x), self.encode_style(style))


class Discriminator(nn.Module):
    """Multi-task discriminator ``D`` (paper sec. 3.2.2): one real/fake logit per style class.

    Down-sampling SpiralBlocks without normalisation, flatten (the feature layer ``D_f`` used by the
    feature-matching loss, eq. 9), then one linear layer to ``num_styles`` logits.

    Args:
        hierarchy: mesh hierarchy (built by the LightningModule from ``model.hierarchy``).
        num_styles: number of style (expression) classes (from the data).
        channels: SpiralBlock widths, one per down-sampling level (the ``model.discriminator`` block).
    """

    def __init__(self, hierarchy, *, num_styles: int, channels: Sequence[int] = COMA_CHANNELS) -> None:
        super().__init__()
        self.num_vertices = _num_vertices(hierarchy, 0)
        self.blocks = down_blocks(hierarchy, channels, "none", "Discriminator")
        self.num_styles = num_styles
        self.classifier = nn.Linear(_num_vertices(hierarchy, len(channels)) * channels[-1], num_styles)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, V, 3]`` -> ``(logits [B, num_styles], features D_f [B, F])``.

        Raises:
            FacegenError: ``x`` is not ``[B, V, 3]`` with the hierarchy's ``V``.
        """
        _check_mesh(x, self.num_vertices, "Discriminator x")
        for block in self.blocks:
            x = block(x)
        features = x.flatten(1)
        return self.classifier(features), features

    @staticmethod
    def select(logits: torch.Tensor, style_label: torch.Tensor) -> torch.Tensor:
        """The logit of each sample's own style class: ``logits [B, S]``, ``style_label [B]`` -> ``[B]``.

        Raises:
            FacegenError: ``logits`` is not ``[B, S]`` or ``style_label`` not ``[B]``, or a label is outside ``0..S-1``.
        """
        assert_shape(logits, ["B", "S"], "Discriminator.select logits", error=FacegenError)
        assert_shape(style_label, [logits.shape[0]], "Discriminator.select style_label", error=FacegenError)
        if style_label.numel() and (int(style_label.min()) < 0 or int(style_label.max()) >= logits.shape[1]):
            raise FacegenError(
                f"Discriminator.select: style labels must lie in 0..{logits.shape[1] - 1}, "
                f"got min {int(style_label.min())} max {int(style_label.max())}"
            )
        return logits.gather(1, style_label.long().view(-1, 1)).squeeze(1)
