"""Photometric augmentation of the face regressor's training images (geometry kept, so the targets stay valid)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facegen.errors import ConfigError


@dataclass(frozen=True)
class Augmentation:
    """The ``model.augmentation`` block of :class:`~facegen.models.face_regressor.module.FaceRegressorModule`.

    Attributes:
        strength: scale of :func:`augment_images` (0 = off; 1 = brightness/contrast +-20 %, colour gain +-5 %,
            bias +-0.06, blur on 30 % of the images, noise up to 0.03 on the [0, 1] scale).
    """

    strength: float = 1.0

    def check(self, where: str) -> None:
        if self.strength < 0:
            raise ConfigError(f"{where}.strength: must be >= 0, got {self.strength}")


def augment_images(images: torch.Tensor, generator: torch.Generator | None = None,
                   strength: float = 1.0) -> torch.Tensor:
    """Photometric augmentation that keeps geometry (so the targets stay valid): per-image brightness,
    contrast and colour gain, Gaussian blur (sometimes) and pixel noise. ``images [B, C, H, W]`` in [-1, 1]."""
    if strength <= 0:
        return images
    b, c = images.shape[:2]
    dev = images.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    x = (images + 1) / 2
    gain = 1 + strength * 0.2 * (rand(b, 1, 1, 1) * 2 - 1) + strength * 0.05 * (rand(b, c, 1, 1) * 2 - 1)
    bias = strength * 0.06 * (rand(b, 1, 1, 1) * 2 - 1)
    mean = x.mean((1, 2, 3), keepdim=True)
    contrast = 1 + strength * 0.2 * (rand(b, 1, 1, 1) * 2 - 1)
    x = (x - mean) * contrast + mean
    x = x * gain + bias
    blur = rand(b) < 0.3 * strength
    if blur.any():
        kernel = torch.tensor([0.25, 0.5, 0.25], device=dev, dtype=x.dtype)
        kernel = (kernel[:, None] * kernel[None]).expand(c, 1, 3, 3)
        blurred = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
        x = x.clone()
        x[blur] = blurred
    x = x + strength * 0.03 * rand(b, 1, 1, 1) * torch.randn(x.shape, generator=generator).to(dev)
    return (x.clamp(0, 1) * 2 - 1)
