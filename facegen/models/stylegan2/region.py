"""Region loss refinement: auxiliary local discriminators on landmark-defined crops (eyes, mouth, ...).

Igaue et al. 2025 ("Motion Transfer-Enhanced StyleGAN for Generating Diverse Macaque Facial
Expressions", arXiv 2511.16711) refine StyleGAN2's loss "to ensure the accurate reproduction of
subtle movements, such as eye movements"; the exact form is not released. facegen's version is the
local-discriminator form used for facial parts in face completion (Li et al., "Generative Face
Completion", CVPR 2017: a global plus a local adversarial loss on the face part) and in
"Learning Residual Images for Face Attribute Manipulation" (Shen and Liu, CVPR 2017):

- Each region (default ``eyes``; ``mouth``, ``brows`` ... optional) is a fixed square box in image pixels,
  taken from landmarks: for aligned crops, the dataset's **mean** landmarks (generated images have no
  annotations, so real and generated images are cropped at the same place), see :func:`region_boxes`.
- Real and generated images are cropped at that box and resized to ``crop_size`` (bilinear,
  differentiable: :func:`crop_boxes`, kornia ``crop_and_resize``). Crops are taken from the
  *un-augmented* images (ADA's geometric transforms would move the region away from its box).
- A small StyleGAN2 :class:`~facegen.models.stylegan2.discriminator.Discriminator` per region (``crop_size``
  pixels, the main network's ``channel_base``/``channel_max``) scores the crops. Losses are the
  non-saturating logistic ones of the main GAN, summed over regions
  (:meth:`RegionDiscriminators.generator_loss`, :meth:`~RegionDiscriminators.discriminator_loss`),
  and the region discriminators get the same lazy R1 penalty as the main one
  (:meth:`~RegionDiscriminators.r1_penalty`).

:class:`facegen.models.stylegan2.StyleGAN2` adds ``region_weight *`` these terms to its G and D losses when
``region_weight > 0``; with ``region_weight = 0`` no region network exists and training is unchanged.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import crop_and_resize
from torch import Tensor, nn

from facegen.data.keypoints import Keypoints, default_regions, load_keypoints
from facegen.errors import StyleGANInputError
from facegen.models.gan import r1_penalty
from facegen.models.stylegan2.discriminator import Discriminator
from facegen.models.stylegan2.networks import check_input


def region_box(points: np.ndarray, margin: float = 0.25, min_size: float = 8.0,
               image_size: int | None = None) -> np.ndarray:
    """Square box around ``points [P, 2]`` (u, v pixels): ``[4]`` float ``(x0, y0, x1, y1)``, inclusive pixels.

    The points' bounding box is grown by ``margin`` times its larger side on every side, made square about
    its centre and at least ``min_size`` pixels wide; with ``image_size`` it is shifted (not shrunk) to lie
    inside the image where it fits.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    side = max(float((hi - lo).max()) * (1 + 2 * margin), min_size)
    x0, y0 = centre - side / 2
    if image_size is not None and side <= image_size:
        x0 = float(np.clip(x0, -0.5, image_size - 0.5 - side))
        y0 = float(np.clip(y0, -0.5, image_size - 0.5 - side))
    return np.array([x0, y0, x0 + side, y0 + side], dtype=np.float32)


def mean_landmarks(source) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[int, int] | None]:
    """``(mean points [K, 2], regions, image_size)`` from a :class:`facegen.data.keypoints.Keypoints`, a
    landmarks file path (CSV/JSON, read by ``load_keypoints``) or an array ``[K, 2]`` / ``[N, K, 2]`` (68 points).

    The mean is over all annotated images (the template when none is annotated).

    Raises:
        StyleGANInputError: no keypoints, or an array that is not ``[K, 2]`` / ``[N, K, 2]``.
    """
    if isinstance(source, (str, Path)):
        source = load_keypoints(source)
    if isinstance(source, Keypoints):
        arrays = list(source.points.values()) or ([source.default] if source.default is not None else [])
        if not arrays:
            raise StyleGANInputError(f"{source.source}: no keypoints to place the region boxes")
        return np.mean(np.stack(arrays), axis=0), source.regions, source.image_size
    array = np.asarray(source, dtype=np.float64)
    check_input(array, ["N", "K", 2] if array.ndim == 3 else ["K", 2], "landmarks",
                hint="(u, v) pixels, [K, 2] or [N, K, 2]")
    array = array.mean(0) if array.ndim == 3 else array
    return array, default_regions(array.shape[0]), None


def region_boxes(landmarks, regions: Sequence[str], resolution: int, margin: float = 0.25,
                 min_size: float | None = None) -> dict[str, np.ndarray]:
    """Region name -> box ``[4]`` (x0, y0, x1, y1) in pixels of a ``resolution``-pixel image.

    Args:
        landmarks: anything :func:`mean_landmarks` takes. Coordinates are rescaled from the keypoints'
            ``image_size`` (when known) to ``resolution``.
        regions: names of point groups (``eyes``, ``mouth``, ``brows``, ... as in the keypoints' regions).
        margin, min_size: see :func:`region_box` (``min_size`` default ``resolution / 8``).
    Raises:
        StyleGANInputError: a region the keypoints do not name.
    """
    points, named, size = mean_landmarks(landmarks)
    if size is not None and size[0] != resolution:
        points = (points + 0.5) * (resolution / size[0]) - 0.5
    out = {}
    for name in regions:
        if name not in named:
            raise StyleGANInputError(f"region {name!r} is not among the landmarks' regions {sorted(named)}")
        out[name] = region_box(points[np.asarray(named[name])], margin, min_size or resolution / 8, resolution)
    return out


def crop_boxes(images: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Bilinear crops ``[B, C, size, size]`` of ``images [B, C, H, W]`` at ``boxes`` ``[4]`` or ``[B, 4]``
    (x0, y0, x1, y1 pixels; kornia ``crop_and_resize``, differentiable w.r.t. the images).

    Raises:
        StyleGANInputError: images not ``[B, C, H, W]`` or boxes not ``[4]`` / ``[B, 4]``.
    """
    check_input(images, ["B", "C", "H", "W"], "images")
    check_input(boxes, [4] if boxes.ndim == 1 else [images.shape[0], 4], "boxes", hint="(x0, y0, x1, y1) pixels")
    boxes = boxes.to(images).reshape(-1, 4).expand(images.shape[0], 4)
    x0, y0, x1, y1 = boxes.unbind(-1)
    corners = torch.stack([torch.stack([x0, y0], -1), torch.stack([x1, y0], -1),
                           torch.stack([x1, y1], -1), torch.stack([x0, y1], -1)], dim=1)  # [B, 4, 2]
    return crop_and_resize(images, corners, (size, size), mode="bilinear", padding_mode="border")


def box_mask(box: Sequence[float], resolution: int) -> Tensor:
    """``[resolution, resolution]`` float mask, 1 inside ``box`` (x0, y0, x1, y1 pixels, inclusive)."""
    x0, y0, x1, y1 = (float(b) for b in box)
    r = torch.arange(resolution, dtype=torch.float32)
    inside_y = (r >= y0 - 0.5) & (r <= y1 + 0.5)
    inside_x = (r >= x0 - 0.5) & (r <= x1 + 0.5)
    return (inside_y[:, None] & inside_x[None, :]).float()


class RegionDiscriminators(nn.Module):
    """One small discriminator per region, on crops at fixed boxes (see the module docstring).

    Args:
        boxes: region name -> ``(x0, y0, x1, y1)`` pixels (:func:`region_boxes`).
        img_channels: image channels; crop_size: crop side in pixels (power of two >= 8).
        channel_base, channel_max, mbstd_group_size: sizes of each region's :class:`Discriminator`.
    Buffers: ``boxes [R, 4]`` (saved in checkpoints).
    Raises:
        StyleGANInputError: no boxes, or a box that is not 4 numbers.
    """

    def __init__(self, boxes: Mapping[str, Sequence[float]], img_channels: int, crop_size: int = 16,
                 channel_base: int = 4096, channel_max: int = 128, mbstd_group_size: int = 4):
        super().__init__()
        if not boxes:
            raise StyleGANInputError("RegionDiscriminators needs at least one region box")
        for name, box in boxes.items():
            check_input(np.asarray(box), [4], f"boxes[{name!r}]", hint="(x0, y0, x1, y1) pixels")
        self.names = list(boxes)
        self.crop_size = crop_size
        self.register_buffer("boxes", torch.tensor(np.stack([np.asarray(boxes[n], np.float32) for n in self.names])))
        self.D = nn.ModuleDict({name: Discriminator(img_resolution=crop_size, img_channels=img_channels,
                                                    channel_base=channel_base, channel_max=channel_max,
                                                    mbstd_group_size=mbstd_group_size) for name in self.names})

    def crops(self, images: Tensor) -> dict[str, Tensor]:
        """Region name -> crops ``[B, C, crop_size, crop_size]`` of ``images [B, C, H, W]``."""
        return {name: crop_boxes(images, self.boxes[i], self.crop_size) for i, name in enumerate(self.names)}

    def logits(self, images: Tensor) -> dict[str, Tensor]:
        """Region name -> logits ``[B, 1]``."""
        return {name: self.D[name](crop) for name, crop in self.crops(images).items()}

    def generator_loss(self, fake: Tensor) -> Tensor:
        """Non-saturating G loss summed over regions: ``sum_r mean softplus(-D_r(crop_r(fake)))`` (scalar)."""
        return sum(F.softplus(-logit).mean() for logit in self.logits(fake).values())

    def discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Logistic D loss summed over regions: ``sum_r mean softplus(D_r(fake)) + softplus(-D_r(real))``."""
        real_logits, fake_logits = self.logits(real), self.logits(fake.detach())
        return sum(F.softplus(fake_logits[n]).mean() + F.softplus(-real_logits[n]).mean() for n in self.names)

    def r1_penalty(self, real: Tensor, scaler=None) -> Tensor:
        """R1 ``[B]`` of all region discriminators w.r.t. ``real [B, C, H, W]`` (which must require grad)."""
        logits = sum(self.logits(real).values())
        return r1_penalty(real, logits, scaler)


__all__ = ["RegionDiscriminators", "box_mask", "crop_boxes", "mean_landmarks", "region_box", "region_boxes"]
