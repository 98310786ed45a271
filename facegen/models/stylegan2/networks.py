"""StyleGAN2 generator (mapping + skip synthesis) and the input checks shared with the discriminator.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020), config F with the
stylegan2-ada-pytorch changes (Karras et al. 2020b): channel_base 32768, lr multiplier 0.01 in the
mapping network, conv_clamp 256 and fp16 in the highest resolutions under mixed precision. Module,
parameter and buffer names equal NVlabs ``training/networks.py`` (``mapping.fc0``, ``synthesis.b4.const``,
``synthesis.b8.conv0.affine`` ...), so an NVlabs state dict loads with ``load_state_dict``. The residual
discriminator is in :mod:`facegen.models.stylegan2.discriminator`.

Mixed precision: a block marked ``use_fp16`` (the ``num_fp16_res`` highest resolutions) runs in the
autocast dtype when autocast is on (Lightning ``16-mixed`` / ``bf16-mixed``); every other block, the
mapping network, the affine layers and the epilogue run in float32 with autocast switched off.

Style space S (Wu et al., "StyleSpace Analysis", CVPR 2021): the style code of a layer is its affine
output ``s = A(w)`` (one ``[B, C_in]`` tensor per conv and toRGB layer, toRGB weight gain excluded).
``G.synthesis.w_to_s(ws)`` lists them in ``G.synthesis.style_names`` order and
``G.synthesis.forward_s(styles)`` synthesises from them.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import torch
from torch import nn

from facegen.errors import StyleGANInputError
from facegen.nn.stylegan_layers import (
    FullyConnectedLayer,
    bias_act,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    upsample2d,
)
from facegen.shapes import assert_shape, format_shape

NOISE_MODES = ("const", "random", "none")


def block_precision(use_fp16: bool, device_type: str) -> tuple[torch.dtype, contextlib.AbstractContextManager]:
    """Compute dtype and autocast context of a block: the autocast dtype for fp16 blocks, else float32."""
    if use_fp16 and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type), contextlib.nullcontext()
    return torch.float32, torch.autocast(device_type, enabled=False)


def check_input(value: torch.Tensor | None, shape: Sequence[int | str | None], name: str, hint: str = "") -> None:
    """:func:`facegen.shapes.assert_shape` with :class:`StyleGANInputError`, also for a missing (``None``) input.

    Raises:
        StyleGANInputError: ``<name>: expected shape [B, 16], got [4, 15]`` (or ``got None``), then ``; hint``.
    """
    if value is None:
        message = f"{name}: expected shape {format_shape(shape)}, got None"
        raise StyleGANInputError(f"{message}; {hint}" if hint else message)
    assert_shape(value, shape, name, error=StyleGANInputError, hint=hint)


def check_resolution(img_resolution: int) -> None:
    """Raises StyleGANInputError unless ``img_resolution`` is a power of two >= 4."""
    if img_resolution < 4 or img_resolution & (img_resolution - 1):
        raise StyleGANInputError(f"img_resolution must be a power of two >= 4 (32 to 1024 tested), "
                                 f"got {img_resolution}")


class MappingNetwork(nn.Module):
    """z (and optional label c) -> w through ``num_layers`` equalised FC layers with lrelu (NVlabs ``MappingNetwork``).

    Keeps ``w_avg`` (``[w_dim]`` buffer), the running mean of w with decay ``w_avg_beta``, used for truncation.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                                          lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool | None = None) -> torch.Tensor:
        """Map latents to w.

        Args:
            z: ``[B, z_dim]`` (normalised to unit second moment here).
            c: ``[B, c_dim]`` one-hot labels, or ``None`` when ``c_dim == 0``.
            truncation_psi: ``w <- w_avg + psi * (w - w_avg)`` (Karras et al. 2019, truncation trick).
            truncation_cutoff: truncate only the first ``cutoff`` of the ``num_ws`` copies (``None`` = all).
            update_w_avg: move ``w_avg`` toward this batch's mean; default: only in training mode.
        Returns:
            ``[B, num_ws, w_dim]`` (``[B, w_dim]`` when ``num_ws`` is ``None``).
        Raises:
            StyleGANInputError: wrong z or c shape.
        """
        if self.z_dim > 0:
            check_input(z, ["B", self.z_dim], "z", hint="latents of N(0, I)")
        if self.c_dim > 0:
            check_input(c, [z.shape[0] if self.z_dim > 0 else "B", self.c_dim], "c", hint="one-hot labels")
        with torch.autocast(z.device.type if z is not None else c.device.type, enabled=False):
            x = None
            if self.z_dim > 0:
                x = normalize_2nd_moment(z.float())
            if self.c_dim > 0:
                y = normalize_2nd_moment(self.embed(c.float()))
                x = torch.cat([x, y], dim=1) if x is not None else y
            for idx in range(self.num_layers):
                x = getattr(self, f"fc{idx}")(x)
            if update_w_avg is None:
                update_w_avg = self.training
            if update_w_avg and self.w_avg_beta is not None:
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
            if self.num_ws is None:
                return x
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
            if truncation_psi != 1:
                cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
                x = torch.cat([self.w_avg.lerp(x[:, :cutoff], truncation_psi), x[:, cutoff:]], dim=1)
            return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling x2) + per-pixel noise + bias + lrelu (NVlabs ``SynthesisLayer``).

    Buffers/parameters: ``affine`` (w -> style, bias init 1), ``weight [O, I, 3, 3]``, ``bias [O]``,
    ``noise_strength`` (scalar, learned), ``noise_const [R, R]`` (fixed noise for ``noise_mode="const"``).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 conv_clamp: float | None = None, resample_filter: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.in_channels, self.resolution, self.up, self.conv_clamp = in_channels, resolution, up, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = 1
        self.act_gain = math.sqrt(2)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 3, 3]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """``x [B, I, R/up, R/up]``, ``style [B, I]`` (from ``affine``) -> ``[B, O, R, R]``."""
        noise = None
        if noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, style, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1))
        return bias_act(x, self.bias, act="lrelu", gain=self.act_gain, clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation to ``img_channels`` (NVlabs ``ToRGBLayer``)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.conv_clamp = in_channels, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """``x [B, I, R, R]``, ``style [B, I]`` (raw affine output) -> ``[B, img_channels, R, R]``."""
        x = modulated_conv2d(x, self.weight, style * self.weight_gain, demodulate=False)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (const | conv0 up x2) -> conv1 -> torgb, image upsampled and summed."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 use_fp16: bool = False, conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.in_channels, self.resolution, self.use_fp16 = in_channels, resolution, use_fp16
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.register_buffer("resample_filter", setup_filter([1, 3, 3, 1]))
        self.layer_names: list[str] = []
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
            self.layer_names.append("conv0")
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.layer_names += ["conv1", "torgb"]
        self.num_conv = len(self.layer_names) - 1
        self.num_torgb = 1

    def w_to_s(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """``ws [B, num_conv + 1, w_dim]`` -> style codes of conv0 (if any), conv1, torgb."""
        return [getattr(self, name).affine(w) for name, w in zip(self.layer_names, ws.unbind(dim=1))]

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, styles: Sequence[torch.Tensor],
                noise_mode: str = "const") -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[B, I, R/2, R/2]`` (None at 4x4) and image ``[B, C, R/2, R/2]`` -> both at ``R``."""
        device_type = styles[0].device.type
        dtype, precision = block_precision(self.use_fp16, device_type)
        with precision:
            if self.in_channels == 0:
                x = self.const.to(dtype).unsqueeze(0).repeat([styles[0].shape[0], 1, 1, 1])
            else:
                x = x.to(dtype)
            x = x.contiguous(memory_format=self.memory_format)
            for name, style in zip(self.layer_names[:-1], styles):
                x = getattr(self, name)(x, style, noise_mode=noise_mode)
            y = self.torgb(x, styles[-1]).float()
        if img is not None:  # the RGB skip image stays float32 (NVlabs keeps it so): autocast would round it per block
            with torch.autocast(device_type, enabled=False):
                img = upsample2d(img.float(), self.resample_filter)
        img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """W+ (``[B, num_ws, w_dim]``) or style codes -> image ``[B, img_channels, R, R]`` (skip architecture)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, conv_clamp: float | None = None,
                 channels_last: bool = False):
        super().__init__()
        check_resolution(img_resolution)
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        self.style_names: list[str] = []
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                                   use_fp16=res >= fp16_resolution, conv_clamp=conv_clamp,
                                   channels_last=channels_last)
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
            self.style_names += [f"b{res}.{name}" for name in block.layer_names]
        self.num_ws += 1  # the last block's toRGB

    def blocks(self) -> Iterator[SynthesisBlock]:
        return (getattr(self, f"b{res}") for res in self.block_resolutions)

    def w_to_s(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """Style codes of every layer: ``ws [B, num_ws, w_dim]`` -> list of ``[B, C_l]`` in ``style_names`` order.

        Block at resolution R uses ``ws[:, i : i + num_conv + 1]`` where ``i`` counts earlier blocks' convs
        (each toRGB shares its w with the next block's first conv, as NVlabs). Affines run in float32.
        """
        check_input(ws, ["B", self.num_ws, self.w_dim], "ws", hint="W+ latents [B, num_ws, w_dim]")
        styles, w_idx = [], 0
        with torch.autocast(ws.device.type, enabled=False):
            ws = ws.float()
            for block in self.blocks():
                styles += block.w_to_s(ws.narrow(1, w_idx, block.num_conv + 1))
                w_idx += block.num_conv
        return styles

    def forward_s(self, styles: Sequence[torch.Tensor], noise_mode: str = "const") -> torch.Tensor:
        """Synthesise from style codes (as returned by :meth:`w_to_s`) -> ``[B, C, R, R]`` float32, about [-1, 1]."""
        if noise_mode not in NOISE_MODES:
            raise StyleGANInputError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if len(styles) != len(self.style_names):
            raise StyleGANInputError(f"expected {len(self.style_names)} style codes ({self.style_names}), "
                                     f"got {len(styles)}")
        x = img = None
        i = 0
        for block in self.blocks():
            n = len(block.layer_names)
            x, img = block(x, img, styles[i:i + n], noise_mode=noise_mode)
            i += n
        return img

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """``ws [B, num_ws, w_dim]`` -> image ``[B, img_channels, R, R]`` float32, about [-1, 1].

        Raises:
            StyleGANInputError: ws of the wrong shape, or an unknown ``noise_mode``.
        """
        return self.forward_s(self.w_to_s(ws), noise_mode=noise_mode)


class Generator(nn.Module):
    """StyleGAN2 generator: ``G(z, c) = synthesis(mapping(z, c))``.

    Args:
        z_dim, w_dim: latent sizes; c_dim: label size (0 = unconditional).
        img_resolution: output size in pixels (power of two, 32 to 1024); img_channels: 1 or 3.
        mapping_layers: FC layers in the mapping network (lr multiplier 0.01, w_avg decay 0.995).
        channel_base, channel_max: channels at resolution R are ``min(channel_base // R, channel_max)``.
        num_fp16_res: number of highest resolutions run in the autocast dtype under mixed precision.
        conv_clamp: clamp of conv outputs (256 with mixed precision, as NVlabs), ``None`` = no clamp.
        channels_last: keep feature maps and conv weights in channels-last (NHWC) memory, which oneDNN's CPU
            convolutions prefer (about 1.2x a float32 CPU step here; see benchmarks). Same values up to float
            round-off; off by default (NVlabs' layout).
    """

    def __init__(self, z_dim: int = 512, c_dim: int = 0, w_dim: int = 512, img_resolution: int = 64,
                 img_channels: int = 3, mapping_layers: int = 8, channel_base: int = 32768, channel_max: int = 512,
                 num_fp16_res: int = 0, conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_layers=mapping_layers, channel_base=channel_base,
                                channel_max=channel_max, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp,
                                channels_last=channels_last)
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base, channel_max,
                                          num_fp16_res, conv_clamp, channels_last=channels_last)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, num_layers=mapping_layers)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const") -> torch.Tensor:
        """``z [B, z_dim]``, ``c [B, c_dim]`` -> image ``[B, img_channels, R, R]`` float32, about [-1, 1].

        Raises:
            StyleGANInputError: z or c of the wrong shape, c missing for a conditional generator.
        """
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


__all__ = ["Generator", "MappingNetwork", "SynthesisNetwork", "StyleGANInputError", "block_precision",
           "check_input", "check_resolution"]
