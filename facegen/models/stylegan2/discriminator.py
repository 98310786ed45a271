"""StyleGAN2 residual discriminator with minibatch stddev and label projection (NVlabs ``training/networks.py``).

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020), config F ("resnet"
discriminator) with the stylegan2-ada-pytorch changes (Karras et al. 2020b). Module, parameter and buffer names
equal NVlabs' (``b64.fromrgb``, ``b8.skip``, ``b4.mbstd``, ``b4.fc``, ``mapping.embed`` ...). Mixed precision as
the generator (:mod:`facegen.models.stylegan2.networks`): the ``num_fp16_res`` highest resolutions run in the
autocast dtype, the epilogue in float32.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from facegen.models.stylegan2.networks import (
    MappingNetwork,
    block_precision,
    check_input,
    check_resolution,
)
from facegen.nn.stylegan_layers import Conv2dLayer, FullyConnectedLayer


class DiscriminatorBlock(nn.Module):
    """Residual discriminator block: (fromrgb) -> conv0 -> conv1 down x2, plus a 1x1 skip down x2; both
    branches scaled by sqrt(0.5) (NVlabs ``DiscriminatorBlock``, architecture "resnet")."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 use_fp16: bool = False, conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.use_fp16 = in_channels, use_fp16
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        """Features ``[B, I, R, R]`` (or the image at the first block) -> ``[B, O, R/2, R/2]``."""
        dtype, precision = block_precision(self.use_fp16, img.device.type)
        with precision:
            x = self.fromrgb(img.to(dtype)) if self.in_channels == 0 else x.to(dtype)
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
            return y + x


class MinibatchStdLayer(nn.Module):
    """Append the mean (over channels and pixels) of the per-group feature stddev as extra channels.

    Groups of ``group_size`` samples (NVlabs ``MinibatchStdLayer``); when the batch is not divisible by
    ``group_size`` the largest divisor of the batch below it is used (NVlabs asserts instead).
    ``[B, C, H, W]`` -> ``[B, C + num_channels, H, W]``.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)
        return torch.cat([x, y.repeat(g, 1, h, w)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch stddev -> 3x3 conv -> FC -> logit (or label projection with ``cmap``)."""

    def __init__(self, in_channels: int, cmap_dim: int, mbstd_group_size: int = 4, mbstd_num_channels: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * 16, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        """``x [B, C, 4, 4]`` float32 -> logits ``[B, 1]``."""
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if cmap is not None:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator with minibatch stddev; labels by projection (NVlabs ``Discriminator``).

    Args:
        c_dim: label size (0 = unconditional); img_resolution: 32 to 1024 (power of two); img_channels: 1 or 3.
        channel_base, channel_max: channels at resolution R are ``min(channel_base // R, channel_max)``.
        mbstd_group_size, mbstd_num_channels: minibatch stddev group size and number of stddev channels.
        num_fp16_res, conv_clamp, channels_last: as :class:`~facegen.models.stylegan2.networks.Generator`.
    """

    def __init__(self, c_dim: int = 0, img_resolution: int = 64, img_channels: int = 3, channel_base: int = 32768,
                 channel_max: int = 512, mbstd_group_size: int = 4, mbstd_num_channels: int = 1,
                 num_fp16_res: int = 0, conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        check_resolution(img_resolution)
        self.init_kwargs = dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
                                channel_base=channel_base, channel_max=channel_max, mbstd_group_size=mbstd_group_size,
                                mbstd_num_channels=mbstd_num_channels, num_fp16_res=num_fp16_res,
                                conv_clamp=conv_clamp, channels_last=channels_last)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        cmap_dim = channels[4] if c_dim > 0 else 0
        for res in self.block_resolutions:
            setattr(self, f"b{res}", DiscriminatorBlock(
                channels[res] if res < img_resolution else 0, channels[res], channels[res // 2], img_channels,
                use_fp16=res >= fp16_resolution, conv_clamp=conv_clamp))
        if c_dim > 0:
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, num_ws=None, w_avg_beta=None)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim, mbstd_group_size, mbstd_num_channels, conv_clamp)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """``img [B, img_channels, R, R]`` in [-1, 1], ``c [B, c_dim]`` -> logits ``[B, 1]`` float32.

        Raises:
            StyleGANInputError: wrong image shape or missing labels.
        """
        check_input(img, ["B", self.img_channels, self.img_resolution, self.img_resolution], "images",
                    hint="images in [-1, 1]")
        if self.c_dim > 0:
            check_input(c, [img.shape[0], self.c_dim], "c", hint="one-hot labels")
        x = None
        img = img.contiguous(memory_format=self.memory_format)
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        with torch.autocast(img.device.type, enabled=False):
            cmap = self.mapping(None, c) if self.c_dim > 0 else None
            return self.b4(x.float(), cmap)


__all__ = ["Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer"]
