"""Projection (GAN inversion) of images into StyleGAN2's W or W+ space by optimisation.

Follows the projector of Karras et al., CVPR 2020 (StyleGAN2, appendix D; reference implementation
NVlabs/stylegan2-ada-pytorch ``projector.py``): start at the W centre estimated from
``w_avg_samples`` mapped z's, optimise the latent and the per-layer noise maps with Adam under a
cosine ramp-down / linear ramp-up learning-rate schedule, perturb the latent with Gaussian noise of
std ``w_std * initial_noise_factor`` decaying quadratically to 0 over ``noise_ramp_length``,
regularise the noise maps' spatial autocorrelation at every scale (weight ``regularize_noise_weight``)
and renormalise them to zero mean and unit variance after each step.

Additions over the reference: several targets are projected at once (each target has its own
latent and its own noise maps, so a batch equals separate runs up to random draws), W+ optimisation
(``latent_space="w_plus"``: one w per synthesis layer), and a choice of loss:
:class:`LPIPSLoss` (the reference's choice; needs local VGG16 + LPIPS weights) or
:class:`PixelMSSSIMLoss` when no weights are configured.
"""
from __future__ import annotations

import copy
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from facegen.errors import MissingWeightsError, ProjectionInputError
from facegen.metrics.lpips import LPIPS
from facegen.shapes import assert_shape
from facegen.utils import atomic_write

_MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, table 1


class LPIPSLoss(nn.Module):
    """LPIPS-VGG distance ``[B]`` between images ``[B, C, H, W]`` in [-1, 1] (C = 1 is repeated to RGB).

    Images above 256 pixels are area-downsampled to 256x256 first, as in the NVlabs projector
    (VGG16 was trained on 224-pixel images). Raises MissingWeightsError when a file is absent.
    """

    def __init__(self, vgg16_path: str | os.PathLike, lpips_path: str | os.PathLike):
        super().__init__()
        self.lpips = LPIPS(vgg16_path, lpips_path)

    def forward(self, synth: Tensor, target: Tensor) -> Tensor:
        if synth.shape[1] == 1:
            synth, target = synth.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
        if synth.shape[2] > 256:
            synth = F.interpolate(synth, size=(256, 256), mode="area")
            target = F.interpolate(target, size=(256, 256), mode="area")
        return self.lpips(synth, target)


class PixelMSSSIMLoss(nn.Module):
    """Weight-free image distance ``[B]``: ``l1_weight * L1 + l2_weight * MSE + ms_ssim_weight * (1 - MS-SSIM)``.

    The default 0.16 / 0.84 mix of L1 and MS-SSIM is Zhao et al., IEEE TCI 2017, "Loss Functions for
    Image Restoration with Neural Networks", eq. 8. MS-SSIM (Wang et al. 2003) uses torchmetrics with
    an 11-pixel Gaussian window (sigma 1.5) on as many scales (at most 5) as the image size allows:
    2 at 32 px, 3 at 64 px, 4 at 128 px, 5 from 256 px; the exponents are the first betas of Wang et
    al. renormalised to sum to 1. Images ``[B, C, H, W]`` in [-1, 1].
    """

    def __init__(self, l1_weight: float = 0.16, l2_weight: float = 0.0, ms_ssim_weight: float = 0.84,
                 kernel_size: int = 11, sigma: float = 1.5):
        super().__init__()
        self.l1_weight, self.l2_weight, self.ms_ssim_weight = l1_weight, l2_weight, ms_ssim_weight
        self.kernel_size, self.sigma = kernel_size, sigma

    def num_scales(self, size: int) -> int:
        """Most MS-SSIM scales (<= 5) torchmetrics accepts for a ``size``-pixel image (0 if none)."""
        fits = [k for k in range(1, 6) if size >= 2 ** k and size // max(1, k - 1) ** 2 > self.kernel_size - 1]
        return max(fits, default=0)

    def forward(self, synth: Tensor, target: Tensor) -> Tensor:
        loss = self.l1_weight * (synth - target).abs().mean(dim=(1, 2, 3))
        loss = loss + self.l2_weight * (synth - target).square().mean(dim=(1, 2, 3))
        if self.ms_ssim_weight:
            scales = self.num_scales(min(synth.shape[-2:]))
            if scales == 0:
                raise ProjectionInputError(
                    f"images of {list(synth.shape[-2:])} pixels are too small for MS-SSIM with a "
                    f"{self.kernel_size}-pixel window; set ms_ssim_weight=0 or a smaller kernel_size"
                )
            betas = torch.tensor(_MS_SSIM_BETAS[:scales])
            ms_ssim = multiscale_structural_similarity_index_measure(
                synth, target, kernel_size=self.kernel_size, sigma=self.sigma, reduction="none",
                data_range=2.0, betas=tuple((betas / betas.sum()).tolist()), normalize="relu",
            )
            loss = loss + self.ms_ssim_weight * (1 - ms_ssim)
        return loss


def make_projection_loss(vgg16_path: str | os.PathLike | None = None,
                         lpips_path: str | os.PathLike | None = None, **fallback_kwargs) -> nn.Module:
    """:class:`LPIPSLoss` when both weight paths are set; :class:`PixelMSSSIMLoss` (``fallback_kwargs``) when none is.

    Raises:
        MissingWeightsError: only one of the two paths is set, or a set path does not exist.
    """
    if vgg16_path is None and lpips_path is None:
        return PixelMSSSIMLoss(**fallback_kwargs)
    if vgg16_path is None or lpips_path is None:
        unset = "vgg16_path" if vgg16_path is None else "lpips_path"
        raise MissingWeightsError(
            f"the LPIPS projection loss needs both vgg16_path and lpips_path; {unset} is not set."
        )
    return LPIPSLoss(vgg16_path, lpips_path)


@dataclass
class ProjectionResult:
    """Output of :func:`project` for ``B`` targets.

    w_plus: ``[B, num_ws, w_dim]`` latents to feed ``G.synthesis`` (W mode: the w repeated).
    w: ``[B, w_dim]`` in W mode, ``None`` in W+ mode.
    noise: noise-buffer name (relative to ``G.synthesis``) -> per-target noise ``[B, 1, H, W]``.
    images: reconstructions ``[B, C, H, W]`` in [-1, 1] with that noise.
    loss_curve: ``[num_steps, B]`` image distance per step (before the noise regulariser).
    """

    w_plus: Tensor
    w: Tensor | None
    noise: dict[str, Tensor]
    images: Tensor
    loss_curve: Tensor


def w_statistics(G: nn.Module, w_avg_samples: int = 10000, c: Tensor | None = None,
                 seed: int = 123, batch_size: int = 1000) -> tuple[Tensor, float]:
    """Centre ``[w_dim]`` and spread (scalar) of W from ``w_avg_samples`` z's (NVlabs projector).

    z is drawn with ``np.random.RandomState(seed)`` (the reference's 123); ``w_std`` is
    ``sqrt(sum ||w - w_avg||^2 / N)``, the root-mean-square distance to the centre. ``c``
    ``[1, c_dim]`` is the label used for every sample of a conditional generator.
    """
    z = torch.from_numpy(np.random.RandomState(seed).randn(w_avg_samples, G.z_dim).astype(np.float32))
    device = next(G.parameters()).device
    ws = []
    with torch.no_grad():
        for start in range(0, w_avg_samples, batch_size):
            z_batch = z[start:start + batch_size].to(device)
            c_batch = None if c is None else c.to(device).expand(len(z_batch), -1)
            ws.append(G.mapping(z_batch, c_batch)[:, 0].double())
    w = torch.cat(ws)
    w_avg = w.mean(dim=0)
    w_std = float(((w - w_avg).square().sum() / w_avg_samples).sqrt())
    return w_avg.float(), w_std


def learning_rate(t: float, initial_learning_rate: float = 0.1, lr_rampdown_length: float = 0.25,
                  lr_rampup_length: float = 0.05) -> float:
    """NVlabs projector learning rate at progress ``t = step / num_steps`` in [0, 1).

    Linear ramp-up over the first ``lr_rampup_length`` and cosine ramp-down over the last
    ``lr_rampdown_length`` of the run.
    """
    ramp = min(1.0, (1.0 - t) / lr_rampdown_length)
    ramp = (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / lr_rampup_length)
    return initial_learning_rate * ramp


def noise_regularization(noise: Tensor) -> Tensor:
    """Spatial-autocorrelation penalty ``[B]`` of noise maps ``[B, 1, H, W]`` (NVlabs projector).

    Sums the squared mean product of each map with itself shifted by one pixel (x and y, wrapping)
    over a pyramid of 2x average-poolings down to 8x8.
    """
    reg = noise.new_zeros(noise.shape[0])
    while True:
        reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean(dim=(1, 2, 3)).square()
        reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean(dim=(1, 2, 3)).square()
        if noise.shape[2] <= 8:
            return reg
        noise = F.avg_pool2d(noise, kernel_size=2)


def synthesize(G: nn.Module, w_plus: Tensor, noise: dict[str, Tensor]) -> Tensor:
    """``G.synthesis(w_plus, noise_mode="const")`` with its ``noise_const`` buffers replaced by ``noise``.

    ``noise`` maps buffer names (relative to ``G.synthesis``) to per-sample maps ``[B, 1, H, W]``,
    which broadcast where the layer adds ``noise_const * noise_strength``. Returns ``[B, C, H, W]``.
    """
    return torch.func.functional_call(G.synthesis, noise, (w_plus,), {"noise_mode": "const"}, strict=False)


def region_l1(synth: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute difference ``[B]`` inside ``mask`` (``[H, W]`` or ``[1 or B, 1, H, W]``, weights >= 0)."""
    mask = mask.to(synth).reshape(-1, 1, *synth.shape[-2:])
    area = (mask.sum(dim=(1, 2, 3)) * synth.shape[1]).clamp_min(1e-8)
    return ((synth - target).abs() * mask).sum(dim=(1, 2, 3)) / area


def project(
    G: nn.Module,
    targets: Tensor,
    loss_fn: nn.Module | None = None,
    *,
    latent_space: str = "w",
    num_steps: int = 1000,
    w_avg_samples: int = 10000,
    initial_learning_rate: float = 0.1,
    initial_noise_factor: float = 0.05,
    lr_rampdown_length: float = 0.25,
    lr_rampup_length: float = 0.05,
    noise_ramp_length: float = 0.75,
    regularize_noise_weight: float = 1e5,
    optimize_noise: bool = True,
    c: Tensor | None = None,
    seed: int = 0,
    log: Callable[[int, Tensor], None] | None = None,
    w_init: Tensor | None = None,
    region_mask: Tensor | None = None,
    region_weight: float = 0.0,
) -> ProjectionResult:
    """Find latents (and noise maps) whose images match ``targets``.

    Args:
        G: a StyleGAN2 generator (``mapping``, ``synthesis``, ``num_ws``, ``z_dim``, ``img_resolution``,
            ``img_channels``; facegen's or any NVlabs-compatible one). It is copied, not modified.
        targets: ``[B, C, H, W]`` float in [-1, 1] at the generator's resolution and channel count.
        loss_fn: ``(synth, target) -> [B]`` distance; default :class:`PixelMSSSIMLoss`.
        latent_space: ``"w"`` (one w for all layers) or ``"w_plus"`` (one per layer).
        num_steps ... regularize_noise_weight: the NVlabs projector's schedule (its defaults).
        optimize_noise: optimise the noise maps (reference behaviour); ``False`` keeps the generator's
            ``noise_const`` maps.
        c: ``[1, c_dim]`` label of a conditional generator.
        seed: seeds the initial noise maps and the latent perturbations.
        log: called as ``log(step, distance [B])`` after every step.
        w_init: start latents instead of the W centre (warm start, e.g. from the previous video
            frame): ``[B, w_dim]`` or ``[B, num_ws, w_dim]`` (W+ only). ``w_std`` still comes from ``w_avg_samples``.
        region_mask, region_weight: optional region-weighted term (Igaue et al. 2025's emphasis on subtle
            regions such as the eyes): ``region_weight * sum(|synth - target| * m) / (C * sum(m))`` per target is
            added to the distance, with ``m = region_mask`` ``[H, W]``, ``[1 or B, 1, H, W]`` (e.g. the eye box of
            :func:`facegen.editing.stylespace.region_masks`). Off when ``region_mask`` is None or the weight is 0.

    Returns:
        :class:`ProjectionResult`.

    Raises:
        ProjectionInputError: targets of the wrong shape or outside [-1, 1], or an unknown ``latent_space``.
    """
    assert_shape(targets, ["B", G.img_channels, G.img_resolution, G.img_resolution], "targets",
                 error=ProjectionInputError, hint="the generator's channels and resolution")
    if targets.min() < -1.001 or targets.max() > 1.001:
        raise ProjectionInputError(
            f"targets span [{float(targets.min()):.3f}, {float(targets.max()):.3f}]; expected floats in [-1, 1]"
        )
    if latent_space not in ("w", "w_plus"):
        raise ProjectionInputError(f"latent_space must be 'w' or 'w_plus', got {latent_space!r}")

    G = copy.deepcopy(G).eval().requires_grad_(False)
    device = next(G.parameters()).device
    targets = targets.to(device=device, dtype=torch.float32)
    loss_fn = (loss_fn if loss_fn is not None else PixelMSSSIMLoss()).to(device)
    batch = targets.shape[0]
    generator = torch.Generator(device=device).manual_seed(seed)

    w_avg, w_std = w_statistics(G, w_avg_samples, c=c)
    num_latents = G.num_ws if latent_space == "w_plus" else 1
    w_opt = w_avg.to(device).view(1, 1, -1).repeat(batch, num_latents, 1).requires_grad_(True)
    if w_init is not None:
        w_init = w_init.detach().to(device=device, dtype=torch.float32)
        w_dim = w_opt.shape[2]
        if w_init.ndim == 2:
            assert_shape(w_init, [batch, w_dim], "w_init", error=ProjectionInputError, hint="one w per target")
        else:
            layers = 1 if w_init.ndim == 3 and w_init.shape[1] == 1 else num_latents
            assert_shape(w_init, [batch, layers, w_dim], "w_init", error=ProjectionInputError,
                         hint=f"[{batch}, {w_dim}] or [{batch}, {num_latents}, {w_dim}]")
        w_init = w_init[:, None] if w_init.ndim == 2 else w_init
        w_opt = w_init.expand(-1, num_latents, -1).clone().requires_grad_(True)
    noise = {  # optimised maps start from N(0, 1) (reference); fixed ones are the generator's own
        name: (torch.randn((batch, 1, *buf.shape[-2:]), generator=generator, device=device).requires_grad_(True)
               if optimize_noise else buf.expand(batch, 1, -1, -1).clone())
        for name, buf in G.synthesis.named_buffers() if "noise_const" in name
    }
    optimizer = torch.optim.Adam([w_opt] + (list(noise.values()) if optimize_noise else []),
                                 betas=(0.9, 0.999), lr=initial_learning_rate)

    loss_curve = torch.zeros(num_steps, batch)
    for step in range(num_steps):
        t = step / num_steps
        w_noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(t, initial_learning_rate, lr_rampdown_length, lr_rampup_length)

        w_noise = torch.randn(w_opt.shape, generator=generator, device=device) * w_noise_scale
        w_plus = (w_opt + w_noise).expand(-1, G.num_ws, -1) if num_latents == 1 else w_opt + w_noise
        synth = synthesize(G, w_plus, noise)
        distance = loss_fn(synth, targets)
        if region_mask is not None and region_weight:
            distance = distance + region_weight * region_l1(synth, targets, region_mask)
        loss = distance.sum()
        if optimize_noise:
            loss = loss + regularize_noise_weight * sum(noise_regularization(v).sum() for v in noise.values())

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_curve[step] = distance.detach().cpu()
        if log is not None:
            log(step, distance.detach())

        if optimize_noise:
            with torch.no_grad():
                for v in noise.values():
                    v -= v.mean(dim=(1, 2, 3), keepdim=True)
                    v *= v.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()

    w_opt = w_opt.detach()
    w_plus = w_opt.expand(-1, G.num_ws, -1).contiguous() if num_latents == 1 else w_opt
    noise = {name: v.detach() for name, v in noise.items()}
    with torch.no_grad():
        images = synthesize(G, w_plus, noise)
    return ProjectionResult(w_plus=w_plus, w=w_opt[:, 0] if num_latents == 1 else None,
                            noise=noise, images=images, loss_curve=loss_curve)


def load_targets(paths: list[str | os.PathLike], resolution: int, channels: int) -> Tensor:
    """Images -> ``[B, channels, resolution, resolution]`` float in [-1, 1], as the NVlabs projector.

    Each image is converted to RGB (``channels=3``) or greyscale (``channels=1``), centre-cropped to a
    square and resized with Lanczos filtering. Any format Pillow reads (png, jpg, pgm, gif ...).

    Raises:
        ProjectionInputError: a file cannot be read as an image.
    """
    images = []
    for path in paths:
        try:
            image = Image.open(path).convert("RGB" if channels == 3 else "L")
        except (OSError, UnidentifiedImageError) as error:
            raise ProjectionInputError(f"{path}: cannot be read as an image ({error})") from error
        w, h = image.size
        s = min(w, h)
        image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
        pixels = np.asarray(image.resize((resolution, resolution), Image.LANCZOS), dtype=np.float32)
        images.append(torch.from_numpy(pixels.reshape(resolution, resolution, channels)).permute(2, 0, 1))
    return torch.stack(images) / 127.5 - 1


def to_uint8(images: Tensor) -> np.ndarray:
    """``[B, C, H, W]`` in [-1, 1] -> ``uint8 [B, H, W, C]`` (NVlabs: ``(x + 1) * 127.5``, clamped)."""
    pixels = ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def save_projection(result: ProjectionResult, out_dir: str | os.PathLike, names: list[str]) -> list[Path]:
    """Write ``{name}.npz`` and ``{name}.png`` per target into ``out_dir``; return the npz paths.

    Each ``.npz`` holds ``w_plus`` ``[1, num_ws, w_dim]`` float32 (always), ``w`` ``[1, w_dim]`` (W mode
    only) and the optimised noise maps as ``noise/<buffer name>`` ``[1, 1, H, W]``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(names) != result.w_plus.shape[0]:
        raise ProjectionInputError(f"{len(names)} names for {result.w_plus.shape[0]} projected targets")
    pictures = to_uint8(result.images)
    paths = []
    for i, name in enumerate(names):
        arrays = {"w_plus": result.w_plus[i:i + 1].cpu().numpy().astype(np.float32)}
        if result.w is not None:
            arrays["w"] = result.w[i:i + 1].cpu().numpy().astype(np.float32)
        arrays.update({f"noise/{k}": v[i:i + 1].cpu().numpy() for k, v in result.noise.items()})
        npz_path = out_dir / f"{name}.npz"
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write(npz_path, buffer.getvalue())
        picture = pictures[i][..., 0] if pictures.shape[-1] == 1 else pictures[i]
        atomic_write(out_dir / f"{name}.png", iio.imwrite("<bytes>", picture, extension=".png"))
        paths.append(npz_path)
    return paths
