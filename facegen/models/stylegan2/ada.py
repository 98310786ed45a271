"""Adaptive discriminator augmentation (ADA), the 'bgc' pipeline, in plain PyTorch.

Karras et al., "Training Generative Adversarial Networks with Limited Data" (NeurIPS 2020), sec. 2-3 and
appendix B; behaviour of NVlabs/stylegan2-ada-pytorch ``training/augment.py`` (blit, geom, color groups).
Every augmentation is applied to an image independently with probability ``p * strength``; the
geometric ones are composed into one 3x3 inverse matrix and executed with reflect padding, 2x upsampling
with the sym6 wavelet filter, bilinear ``grid_sample`` and 2x downsampling; the colour ones are composed
into one 4x4 matrix. Everything is differentiable in the images, twice (``grid_sample``'s double
backward is exact in torch >= 2.1, checked by ``gradgradcheck`` in the tests), so R1 can be taken
through the pipeline. :class:`AdaptiveP` is the controller that moves ``p`` toward the target
``E[sign(D(real))]`` (eq. in sec. 3: r_t = 0.6).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facegen.models.stylegan2.networks import StyleGANInputError, check_input
from facegen.nn.stylegan_layers import downsample2d, setup_filter, upsample2d

# Symlet-6 low-pass analysis filter (pywt 'sym6' dec_lo), NVlabs ``wavelets['sym6']``.
SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

# Strength multipliers of each augmentation per pipeline name (NVlabs ``augpipe_specs``).
PIPELINES = {
    "blit": dict(xflip=1, rotate90=1, xint=1),
    "geom": dict(scale=1, rotate=1, aniso=1, xfrac=1),
    "color": dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    "bg": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1),
    "bgc": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
}


def _matrix(rows: list[list], device: torch.device) -> torch.Tensor:
    """Rows of scalars and ``[B]`` tensors -> ``[B, n, n]`` (or ``[n, n]`` when all are scalars)."""
    ref = next((x for row in rows for x in row if isinstance(x, torch.Tensor)), None)
    if ref is None:
        return torch.tensor(rows, dtype=torch.float32, device=device)
    elems = [x if isinstance(x, torch.Tensor) else torch.full_like(ref, float(x)) for row in rows for x in row]
    return torch.stack(elems, dim=-1).reshape(ref.shape + (len(rows), len(rows[0])))


def translate2d(tx, ty, device):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], device)


def scale2d(sx, sy, device):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], device)


def rotate2d(theta: torch.Tensor, device):
    return _matrix([[torch.cos(theta), -torch.sin(theta), 0], [torch.sin(theta), torch.cos(theta), 0], [0, 0, 1]],
                   device)


def translate3d(tx, ty, tz, device):
    return _matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]], device)


def scale3d(sx, sy, sz, device):
    return _matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]], device)


def rotate3d(v: torch.Tensor, theta: torch.Tensor, device):
    """Rotation by ``theta [B]`` radians about the unit axis ``v [3]`` (Rodrigues), homogeneous ``[B, 4, 4]``."""
    vx, vy, vz = v[0], v[1], v[2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _matrix([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                    [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                    [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                    [0, 0, 0, 1]], device)


class AugmentPipe(nn.Module):
    """ADA augmentation pipeline applied to a batch of images ``[B, C, H, W]`` (C = 1 or 3, values ~[-1, 1]).

    Args:
        pipeline: key of :data:`PIPELINES` (``"bgc"`` = blit + geometric + colour, the ADA default).
        p: initial augmentation probability (buffer ``p``, adjusted by :class:`AdaptiveP`).
        xint_max, scale_std, rotate_max, aniso_std, xfrac_std, brightness_std, contrast_std, hue_max,
        saturation_std: ranges as NVlabs (fractions of the image size, log2 std devs, fractions of pi).
    Raises:
        StyleGANInputError: unknown pipeline or an image with 2 or > 3 channels.
    """

    def __init__(self, pipeline: str = "bgc", p: float = 0.0, xint_max: float = 0.125, scale_std: float = 0.2,
                 rotate_max: float = 1.0, aniso_std: float = 0.2, xfrac_std: float = 0.125,
                 brightness_std: float = 0.2, contrast_std: float = 0.5, hue_max: float = 1.0,
                 saturation_std: float = 1.0):
        super().__init__()
        if pipeline not in PIPELINES:
            raise StyleGANInputError(f"unknown ADA pipeline {pipeline!r}; expected one of {sorted(PIPELINES)}")
        self.pipeline = pipeline
        self.strength = {name: float(PIPELINES[pipeline].get(name, 0)) for name in PIPELINES["bgc"]}
        self.xint_max, self.scale_std, self.rotate_max = xint_max, scale_std, rotate_max
        self.aniso_std, self.xfrac_std = aniso_std, xfrac_std
        self.brightness_std, self.contrast_std = brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("Hz_geom", setup_filter(SYM6))

    def _chosen(self, name: str, shape, device) -> torch.Tensor:
        """Boolean mask ``shape``: which images get augmentation ``name`` (probability ``strength * p``)."""
        return torch.rand(shape, device=device) < self.strength[name] * self.p

    def geometric_inverse(self, batch: int, height: int, width: int, device) -> torch.Tensor:
        """Random inverse pixel transforms ``[B, 3, 3]`` (output pixel -> input pixel, origin at the centre)."""
        g_inv = torch.eye(3, device=device).expand(batch, 3, 3)
        zeros, ones = torch.zeros(batch, device=device), torch.ones(batch, device=device)
        s = self.strength
        if s["xflip"] > 0:
            i = torch.where(self._chosen("xflip", [batch], device),
                            torch.floor(torch.rand(batch, device=device) * 2), zeros)
            g_inv = g_inv @ scale2d(1 - 2 * i, ones, device)
        if s["rotate90"] > 0:
            i = torch.where(self._chosen("rotate90", [batch], device),
                            torch.floor(torch.rand(batch, device=device) * 4), zeros)
            g_inv = g_inv @ rotate2d(-(-math.pi / 2 * i), device)
        if s["xint"] > 0:
            t = (torch.rand([batch, 2], device=device) * 2 - 1) * self.xint_max
            t = torch.where(self._chosen("xint", [batch, 1], device), t, torch.zeros_like(t))
            g_inv = g_inv @ translate2d(-torch.round(t[:, 0] * width), -torch.round(t[:, 1] * height), device)
        if s["scale"] > 0:
            sc = torch.where(self._chosen("scale", [batch], device),
                             torch.exp2(torch.randn(batch, device=device) * self.scale_std), ones)
            g_inv = g_inv @ scale2d(1 / sc, 1 / sc, device)
        p_rot = 1 - torch.sqrt((1 - s["rotate"] * self.p).clamp(0, 1))  # P(pre or post) = p
        if s["rotate"] > 0:
            theta = (torch.rand(batch, device=device) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(torch.rand(batch, device=device) < p_rot, theta, zeros)
            g_inv = g_inv @ rotate2d(theta, device)
        if s["aniso"] > 0:
            sc = torch.where(self._chosen("aniso", [batch], device),
                             torch.exp2(torch.randn(batch, device=device) * self.aniso_std), ones)
            g_inv = g_inv @ scale2d(1 / sc, sc, device)
        if s["rotate"] > 0:
            theta = (torch.rand(batch, device=device) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(torch.rand(batch, device=device) < p_rot, theta, zeros)
            g_inv = g_inv @ rotate2d(theta, device)
        if s["xfrac"] > 0:
            t = torch.randn([batch, 2], device=device) * self.xfrac_std
            t = torch.where(self._chosen("xfrac", [batch, 1], device), t, torch.zeros_like(t))
            g_inv = g_inv @ translate2d(-t[:, 0] * width, -t[:, 1] * height, device)
        return g_inv

    def color_transform(self, batch: int, num_channels: int, device) -> torch.Tensor:
        """Random colour transforms ``[B, 4, 4]`` acting on homogeneous RGB."""
        c_mat = torch.eye(4, device=device).expand(batch, 4, 4)
        zeros, ones = torch.zeros(batch, device=device), torch.ones(batch, device=device)
        s = self.strength
        v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / math.sqrt(3)  # luma axis
        if s["brightness"] > 0:
            b = torch.where(self._chosen("brightness", [batch], device),
                            torch.randn(batch, device=device) * self.brightness_std, zeros)
            c_mat = translate3d(b, b, b, device) @ c_mat
        if s["contrast"] > 0:
            c = torch.where(self._chosen("contrast", [batch], device),
                            torch.exp2(torch.randn(batch, device=device) * self.contrast_std), ones)
            c_mat = scale3d(c, c, c, device) @ c_mat
        if s["lumaflip"] > 0:
            i = torch.where(self._chosen("lumaflip", [batch, 1, 1], device),
                            torch.floor(torch.rand([batch, 1, 1], device=device) * 2),
                            torch.zeros(batch, 1, 1, device=device))
            c_mat = (torch.eye(4, device=device) - 2 * torch.outer(v, v) * i) @ c_mat  # Householder reflection
        if s["hue"] > 0 and num_channels > 1:
            theta = (torch.rand(batch, device=device) * 2 - 1) * math.pi * self.hue_max
            theta = torch.where(self._chosen("hue", [batch], device), theta, zeros)
            c_mat = rotate3d(v, theta, device) @ c_mat
        if s["saturation"] > 0 and num_channels > 1:
            sat = torch.where(self._chosen("saturation", [batch, 1, 1], device),
                              torch.exp2(torch.randn([batch, 1, 1], device=device) * self.saturation_std),
                              torch.ones(batch, 1, 1, device=device))
            vv = torch.outer(v, v)
            c_mat = (vv + (torch.eye(4, device=device) - vv) * sat) @ c_mat
        return c_mat

    def warp(self, images: torch.Tensor, g_inv: torch.Tensor) -> torch.Tensor:
        """Resample ``images [B, C, H, W]`` with inverse transforms ``g_inv [B, 3, 3]`` (pixel units, centred)."""
        batch, channels, height, width = images.shape
        device = images.device
        cx, cy = (width - 1) / 2, (height - 1) / 2
        corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], device=device)
        cp = g_inv @ corners.t()  # [B, 3, 4]
        hz_pad = self.Hz_geom.shape[0] // 4
        margin = cp[:, :2, :].permute(1, 0, 2).flatten(1)  # [xy, B * 4]
        margin = torch.cat([-margin, margin]).max(dim=1).values  # [x0, y0, x1, y1]
        margin = margin + torch.tensor([hz_pad * 2 - cx, hz_pad * 2 - cy] * 2, device=device)
        margin = margin.clamp(min=0).minimum(torch.tensor([width - 1, height - 1] * 2, device=device))
        mx0, my0, mx1, my1 = (int(m) for m in margin.ceil().tolist())

        images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
        g_inv = translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, device) @ g_inv
        images = upsample2d(images, self.Hz_geom, up=2)
        g_inv = scale2d(2, 2, device) @ g_inv @ scale2d(0.5, 0.5, device)
        g_inv = translate2d(-0.5, -0.5, device) @ g_inv @ translate2d(0.5, 0.5, device)
        shape = [batch, channels, (height + hz_pad * 2) * 2, (width + hz_pad * 2) * 2]
        g_inv = (scale2d(2 / images.shape[3], 2 / images.shape[2], device) @ g_inv
                 @ scale2d(shape[3] / 2, shape[2] / 2, device))
        grid = F.affine_grid(g_inv[:, :2, :], shape, align_corners=False)
        images = F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                               align_corners=False)
        return downsample2d(images, self.Hz_geom, down=2, padding=-hz_pad * 2, flip_filter=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Augment ``images [B, C, H, W]`` (C = 1 or 3) -> same shape; identity when ``p == 0``."""
        check_input(images, ["B", "C", "H", "W"], "images", hint="ADA augments [B, 1 or 3, H, W]")
        if images.shape[1] not in (1, 3):
            raise StyleGANInputError(f"images: expected 1 or 3 channels, got {images.shape[1]} "
                                     f"(shape {list(images.shape)})")
        if float(self.p) <= 0:
            return images
        batch, channels, height, width = images.shape
        device = images.device
        g_inv = self.geometric_inverse(batch, height, width, device)
        if not torch.equal(g_inv, torch.eye(3, device=device).expand_as(g_inv)):
            images = self.warp(images, g_inv)
        c_mat = self.color_transform(batch, channels, device).to(images.dtype)
        flat = images.reshape(batch, channels, height * width)
        if channels == 3:
            flat = c_mat[:, :3, :3] @ flat + c_mat[:, :3, 3:]
        else:
            c_mean = c_mat[:, :3, :].mean(dim=1, keepdim=True)
            flat = flat * c_mean[:, :, :3].sum(dim=2, keepdim=True) + c_mean[:, :, 3:]
        return flat.reshape(batch, channels, height, width)


class AdaptiveP:
    """ADA controller (Karras et al. 2020b, sec. 3): every ``interval`` minibatches move ``pipe.p`` by
    ``sign(r_t - target) * images / (ada_kimg * 1000)``, where ``r_t = E[sign(D(x_real))]`` over the
    minibatches since the last adjustment and ``images`` those seen in ``interval`` minibatches;
    p is clamped to [0, 1] (NVlabs clamps only at 0).

    Args:
        pipe: the :class:`AugmentPipe` whose ``p`` buffer is adjusted.
        target: target of r_t (0.6). interval: minibatches between adjustments (4; the caller counts).
        ada_kimg: thousands of images over which p can move by 1 (500).
    """

    def __init__(self, pipe: AugmentPipe, target: float = 0.6, interval: int = 4, ada_kimg: float = 500.0):
        self.pipe, self.target, self.interval, self.ada_kimg = pipe, target, interval, ada_kimg
        self.sign_sum, self.count = 0.0, 0

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Record the signs of the discriminator's logits ``[B, 1]`` on (augmented) real images."""
        self.sign_sum += float(real_logits.detach().sign().sum())
        self.count += real_logits.numel()

    def adjust(self, batch_images: int, reduce=None) -> float | None:
        """Adjust p from the signs recorded since the last call; ``batch_images``: images per minibatch
        over all processes.

        Args:
            reduce: sums the tensor ``[sign_sum, count]`` over processes (``trainer.strategy.reduce``, "sum").
        Returns:
            the measured r_t, or ``None`` when nothing was recorded.
        """
        stats = torch.tensor([self.sign_sum, float(self.count)], device=self.pipe.p.device)
        if reduce is not None:
            stats = reduce(stats)
        self.sign_sum, self.count = 0.0, 0
        if stats[1] <= 0:
            return None
        r_t = float(stats[0] / stats[1])
        sign = float((r_t > self.target) - (r_t < self.target))
        step = sign * batch_images * self.interval / (self.ada_kimg * 1000)
        self.pipe.p.copy_((self.pipe.p + step).clamp(0, 1))
        return r_t
