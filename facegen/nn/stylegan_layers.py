"""StyleGAN2 building blocks in plain PyTorch: FIR resampling, bias + activation, equalised layers.

Reference: Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020), and the
behaviour of NVlabs/stylegan2-ada-pytorch (``torch_utils/ops/upfirdn2d.py`` reference path,
``bias_act.py``, ``conv2d_resample.py``, ``training/networks.py``), re-written without CUDA kernels.
Parameter and buffer names equal NVlabs' so their state dicts load unchanged.

Images and feature maps are ``[B, C, H, W]``; filters are 1-D ``[K]`` (separable) or 2-D ``[K, K]``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Activation name -> (function, default gain). NVlabs bias_act.activation_funcs (subset).
ACTIVATIONS = {
    "linear": (lambda x: x, 1.0),
    "relu": (F.relu, math.sqrt(2)),
    "lrelu": (lambda x: F.leaky_relu(x, 0.2), math.sqrt(2)),
}


def _pad4(padding: int | Sequence[int]) -> list[int]:
    """``padding`` as ``[x0, x1, y0, y1]`` pixels."""
    if isinstance(padding, int):
        return [padding] * 4
    if len(padding) == 2:
        px, py = padding
        return [px, px, py, py]
    return list(padding)


def setup_filter(f: Sequence[float] | torch.Tensor, normalize: bool = True, gain: float = 1.0,
                 separable: bool | None = None) -> torch.Tensor:
    """FIR filter taps as a tensor: 1-D taps become a 2-D outer product unless long (>= 8 taps).

    Args:
        f: taps, e.g. ``[1, 3, 3, 1]`` (binomial, StyleGAN2's resampling filter).
        normalize: divide by the sum so the filter has unit DC gain.
        gain: overall gain (applied per dimension as ``gain ** (ndim / 2)``).
        separable: keep 1-D (applied along x then y); default: when the filter has >= 8 taps.
    Returns:
        ``[K]`` or ``[K, K]`` float32. Matches NVlabs ``upfirdn2d.setup_filter``.
    """
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if normalize:
        f = f / f.sum()
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    return f * (gain ** (f.ndim / 2))


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
              padding: int | Sequence[int] = 0, flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with the FIR filter ``f``, downsample by decimation.

    Args:
        x: ``[B, C, H, W]``.
        f: ``[K]`` (separable) or ``[K, K]`` taps from :func:`setup_filter`; ``None`` = identity.
        up, down: integer factors (same along x and y).
        padding: ``int`` or ``[x0, x1, y0, y1]`` pixels on the upsampled image (negative crops).
        flip_filter: correlate instead of convolve.
        gain: multiplies the filter (``gain ** (ndim / 2)`` per dimension).
    Returns:
        ``[B, C, H', W']`` with ``H' = (H * up + y0 + y1 - K + 1) // down`` (ceil division).
    Matches NVlabs ``upfirdn2d._upfirdn2d_ref``.
    """
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    batch, channels, height, width = x.shape
    px0, px1, py0, py1 = _pad4(padding)
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    f = (f * (gain ** (f.ndim / 2))).to(device=x.device, dtype=x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([channels, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=channels)
    else:
        x = F.conv2d(x, f.unsqueeze(2), groups=channels)
        x = F.conv2d(x, f.unsqueeze(3), groups=channels)
    return x[:, :, ::down, ::down]


def _filter_size(f: torch.Tensor | None) -> int:
    return 1 if f is None else f.shape[-1]


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: int | Sequence[int] = 0,
               flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Upsample ``[B, C, H, W]`` by ``up`` with the FIR filter ``f`` -> ``[B, C, H*up, W*up]``.

    Matches NVlabs ``upfirdn2d.upsample2d``."""
    fw = _filter_size(f)
    px0, px1, py0, py1 = _pad4(padding)
    p = [px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fw + up - 1) // 2, py1 + (fw - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: int | Sequence[int] = 0,
                 flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Low-pass ``[B, C, H, W]`` with ``f`` and decimate -> ``[B, C, H/down, W/down]`` (NVlabs ``downsample2d``)."""
    fw = _filter_size(f)
    px0, px1, py0, py1 = _pad4(padding)
    p = [px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fw - down + 1) // 2, py1 + (fw - down) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, act: str = "linear", gain: float | None = None,
             clamp: float | None = None, dim: int = 1) -> torch.Tensor:
    """``clamp(act(x + b) * gain, -clamp, clamp)``; ``gain`` defaults to the activation's (sqrt(2) for lrelu).

    Args:
        x: any shape; ``b`` ``[x.shape[dim]]`` is broadcast along ``dim``.
        act: ``"linear"``, ``"relu"`` or ``"lrelu"`` (slope 0.2).
        clamp: symmetric output clamp (NVlabs uses 256 with fp16 layers), ``None`` = none.
    Matches NVlabs ``bias_act._bias_act_ref``.
    """
    fn, default_gain = ACTIVATIONS[act]
    if b is not None:
        x = x + b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = fn(x)
    gain = default_gain if gain is None else gain
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = F.hardtanh(x, -clamp, clamp)  # = clamp; its backward is one kernel (clamp's: two compares + where)
    return x


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding: int = 0, groups: int = 1, flip_weight: bool = True) -> torch.Tensor:
    """2-D convolution with optional FIR up/downsampling by 2, as NVlabs ``conv2d_resample``.

    Args:
        x: ``[B, I*groups, H, W]``; w: ``[O, I, kh, kw]``; f: resampling filter (``setup_filter``).
        up, down: 1 or 2. padding: pixels on each side (before resampling adjustments).
        flip_weight: ``True`` = correlation (``F.conv2d``), ``False`` = true convolution.
    Returns:
        ``[B, O, H*up/down, W*up/down]``.
    """
    out_channels, in_per_group, kh, kw = w.shape
    fw = _filter_size(f)
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fw + up - 1) // 2, py1 + (fw - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fw - down + 1) // 2, py1 + (fw - down) // 2

    def conv(x, w, stride=1, pad=0, transpose=False, flip=flip_weight):
        if not flip:
            w = w.flip([2, 3])
        if transpose:
            return F.conv_transpose2d(x, w, stride=stride, padding=pad, groups=groups)
        return F.conv2d(x, w, stride=stride, padding=pad, groups=groups)

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
        return conv(x, w)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = conv(x, w)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1])
        return conv(x, w, stride=down)
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = conv(x, w, stride=up, pad=[pyt, pxt], transpose=True, flip=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2)
        if down > 1:
            x = upfirdn2d(x, f, down=down)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return conv(x, w, pad=[py0, px0])
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    return conv(x, w)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x^2) + eps)`` along ``dim`` (StyleGAN's pixel norm of z)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Equalised-learning-rate linear layer (Karras et al. 2018, sec. 4.1), NVlabs ``FullyConnectedLayer``.

    The stored weight is ``N(0, 1) / lr_multiplier``; the forward pass uses
    ``weight * lr_multiplier / sqrt(in_features)`` and ``bias * lr_multiplier``, so Adam's effective
    step on the used weight scales with ``lr_multiplier`` (0.01 in the mapping network).
    Input ``[B, in_features]`` -> ``[B, out_features]``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate convolution with optional FIR up/downsampling, NVlabs ``Conv2dLayer``.

    ``[B, in_channels, H, W]`` -> ``[B, out_channels, H*up/down, W*up/down]``; the weight is scaled by
    ``1 / sqrt(in_channels * k^2)`` at run time, the output by the activation gain (times ``gain``) and
    clamped to ``conv_clamp * gain``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: float | None = None):
        super().__init__()
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = ACTIVATIONS[activation][1]
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                            flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True) -> torch.Tensor:
    """Modulated convolution with weight demodulation (StyleGAN2 paper, eqs. 1-3).

    Computed as NVlabs' non-fused path: scale input channels by ``styles``, convolve with the shared
    weight, scale output channels by the demodulation coefficients ``1 / sqrt(sum (w * s)^2 + 1e-8)``,
    then add ``noise``. Equal to the per-sample (grouped) weight formulation.

    Args:
        x: ``[B, I, H, W]``; weight: ``[O, I, k, k]``; styles: ``[B, I]`` (the style code s);
        noise: broadcastable to the output, e.g. ``[B, 1, H', W']``.
    Returns:
        ``[B, O, H*up, W*up]``.
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.dtype != torch.float32 and demodulate:
        # Pre-normalise to avoid fp16 overflow (NVlabs); demodulation removes the scale again.
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)
                           / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    dcoefs = None
    if demodulate:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
    x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, padding=padding, flip_weight=flip_weight)
    if dcoefs is not None:
        x = x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
