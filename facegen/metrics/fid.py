"""FID and KID between two image sets, through torchmetrics, with local weights only.

Two feature spaces:

- ``inception_weights_path`` set: torchmetrics' ``FrechetInceptionDistance`` /
  ``KernelInceptionDistance`` with the torch-fidelity InceptionV3 (2048-d pool features) loaded from
  that local file (``feature_extractor_weights_path``; the file is torch-fidelity's
  ``weights-inception-2015-12-05-6726825d.pth``). These are the published FID/KID (Heusel et al.
  2017; Binkowski et al. 2018) and are named ``fid`` and ``kid_mean``/``kid_std``. torchmetrics
  needs the ``torch-fidelity`` package for this, which itself requires torchvision.
- no path: the same statistics on :class:`RandomConvFeatures`, a fixed-seed random convolutional
  network (random embeddings track distribution shifts on non-ImageNet domains: Naeem et al., ICML
  2020, "Reliable Fidelity and Diversity Metrics for Generative Models", section 5). The names are
  ``fid_randfeat`` and ``kid_randfeat_mean``/``kid_randfeat_std`` so that nobody mistakes them for
  published FID; they compare runs with each other only, at equal ``seed``/``num_features``/``image_size``.

Images enter as ``[B, C, H, W]`` float in ``value_range`` (default [-1, 1], the generator's
output); ``C`` is 1 (repeated to RGB) or 3.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from facegen.checkpoints import load
from facegen.errors import MissingWeightsError
from facegen.shapes import assert_shape


class RandomConvFeatures(nn.Module):
    """A frozen random conv net: ``[B, 3, H, W]`` float in [0, 1] -> features ``[B, num_features]``.

    Images are resized (bilinear, antialiased) to ``image_size`` pixels, normalised to [-1, 1] and
    passed through four 3x3 stride-2 convolutions (He-normal weights drawn from a CPU
    ``torch.Generator`` seeded with ``seed``, zero bias, leaky ReLU 0.2). The output concatenates
    the spatial mean and standard deviation of the last layer (``num_features // 2`` channels each),
    so it sees both colour/content and texture statistics.
    """

    def __init__(self, num_features: int = 512, seed: int = 0, image_size: int = 64):
        super().__init__()
        if num_features % 2:
            raise ValueError(f"num_features must be even (mean and std halves), got {num_features}")
        self.num_features = num_features
        self.image_size = image_size
        generator = torch.Generator().manual_seed(seed)
        widths = [3, 64, 128, 256, num_features // 2]
        self.convs = nn.ModuleList()
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1)
            conv.weight.data = torch.randn(conv.weight.shape, generator=generator) * (2.0 / (c_in * 9)) ** 0.5
            conv.bias.data.zero_()
            self.convs.append(conv)
        self.requires_grad_(False).eval()

    def forward(self, images: Tensor) -> Tensor:
        x = F.interpolate(images.float(), size=(self.image_size, self.image_size), mode="bilinear",
                          align_corners=False, antialias=True) * 2 - 1
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


class FidKid(nn.Module):
    """Accumulates real and generated images and reports FID and KID.

    Args:
        inception_weights_path: local torch-fidelity InceptionV3 weights; ``None`` -> random features.
        feature: a custom feature extractor (``[B, 3, H, W]`` float in [0, 1] -> ``[B, D]``) used when
            no Inception path is given; default :class:`RandomConvFeatures` ``(seed=0)``.
        kid_subsets, kid_subset_size: KID subset sampling (the subset size shrinks to the smaller
            set when fewer images were seen).
        value_range: the range of the incoming float images.

    Raises:
        MissingWeightsError: ``inception_weights_path`` is set but the file is absent.
        ModuleNotFoundError: the Inception path is set but torch-fidelity is not installed.

    ``update(images [B, C, H, W], real: bool)``; ``compute() -> dict[str, float]`` with keys
    ``fid``, ``kid_mean``, ``kid_std`` (Inception) or ``fid_randfeat``, ``kid_randfeat_mean``,
    ``kid_randfeat_std`` (random features); :attr:`names` lists them.
    """

    def __init__(
        self,
        inception_weights_path: str | os.PathLike | None = None,
        feature: nn.Module | None = None,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ):
        super().__init__()
        self.value_range = value_range
        self.kid_subset_size = kid_subset_size
        if inception_weights_path is not None:
            path = Path(inception_weights_path)
            if not path.is_file():
                raise MissingWeightsError(
                    f"InceptionV3 weights for FID/KID not found at {path}; set metrics.inception_weights_path "
                    "to a local copy of torch-fidelity's weights-inception-2015-12-05-6726825d.pth or to null."
                )
            load(path)  # the one loading policy refuses a weights file that would run code, before torchmetrics reads it
            self.uses_inception = True
            self.fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path))
            self.kid = KernelInceptionDistance(feature=2048, feature_extractor_weights_path=str(path),
                                               subsets=kid_subsets, subset_size=kid_subset_size)
            suffix = ""
        else:
            self.uses_inception = False
            feature = feature if feature is not None else RandomConvFeatures()
            self.fid = FrechetInceptionDistance(feature=feature)
            self.kid = KernelInceptionDistance(feature=feature, subsets=kid_subsets, subset_size=kid_subset_size)
            suffix = "_randfeat"
        self.names = (f"fid{suffix}", f"kid{suffix}_mean", f"kid{suffix}_std")

    def _prepare(self, images: Tensor) -> Tensor:
        grey = images.ndim == 4 and images.shape[1] == 1
        assert_shape(images, ["B", 1 if grey else 3, "H", "W"], "images", hint="or [B, 1, H, W] (grey)")
        lo, hi = self.value_range
        x = ((images.detach().float() - lo) / (hi - lo)).clamp(0, 1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x * 255).round().to(torch.uint8) if self.uses_inception else x

    @torch.no_grad()
    def update(self, images: Tensor, real: bool) -> None:
        x = self._prepare(images)
        self.fid.update(x, real=real)
        self.kid.update(x, real=real)

    @torch.no_grad()
    def compute(self) -> dict[str, float]:
        n_real = int(self.fid.real_features_num_samples)
        n_fake = int(self.fid.fake_features_num_samples)
        self.kid.subset_size = min(self.kid_subset_size, n_real, n_fake)
        kid_mean, kid_std = self.kid.compute()
        return dict(zip(self.names, (float(self.fid.compute()), float(kid_mean), float(kid_std))))

    def reset(self) -> None:
        self.fid.reset()
        self.kid.reset()


def fid_kid(
    real: Tensor,
    fake: Tensor,
    inception_weights_path: str | os.PathLike | None = None,
    feature: nn.Module | None = None,
    batch_size: int = 64,
    **kwargs,
) -> dict[str, float]:
    """FID and KID between two image tensors ``[N, C, H, W]`` (see :class:`FidKid` for the arguments)."""
    metric = FidKid(inception_weights_path, feature, **kwargs)
    for start in range(0, len(real), batch_size):
        metric.update(real[start:start + batch_size], real=True)
    for start in range(0, len(fake), batch_size):
        metric.update(fake[start:start + batch_size], real=False)
    return metric.compute()
