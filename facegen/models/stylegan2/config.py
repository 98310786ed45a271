"""The config blocks of :class:`facegen.models.stylegan2.StyleGAN2` and their defaults (NVlabs stylegan2-ada-pytorch).

One frozen dataclass per block of ``conf/model/stylegan2.yaml`` (``loss``, ``augment``, ``ema``, ``grid``,
``region``), parsed with :func:`facegen.config.blocks.block` (unknown keys, types and ranges are reported as
``model.<block>.<key>: ...``), and the default network / optimiser specs (``generator``, ``discriminator``,
``optimizer``: mappings with a ``_target_``, built by :func:`facegen.config.spec.build`).

Defaults are those of the flat constructor they replace (facegen <= d915e12), which follow NVlabs
``train.py`` / ``training_loop.py`` (config ``paper256``-like sizes, ``--kimg`` aside).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from facegen.config.blocks import at_least, did_you_mean, in_range
from facegen.config.spec import complete
from facegen.errors import ConfigError
from facegen.models.stylegan2.ada import PIPELINES

GENERATOR_TARGET = "facegen.models.stylegan2.Generator"
DISCRIMINATOR_TARGET = "facegen.models.stylegan2.Discriminator"
OPTIMIZER_TARGET = "torch.optim.Adam"

# Generator kwargs besides the data arguments (img_resolution, img_channels, c_dim come from the datamodule).
DEFAULT_GENERATOR: dict[str, Any] = {
    "_target_": GENERATOR_TARGET, "z_dim": 512, "w_dim": 512, "mapping_layers": 8, "channel_base": 32768,
    "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256}
# Discriminator kwargs; the SHARED_SIZES it does not set are the generator's (NVlabs: one cbase/cmax for both).
DEFAULT_DISCRIMINATOR: dict[str, Any] = {"_target_": DISCRIMINATOR_TARGET, "mbstd_group_size": 4}
SHARED_SIZES = ("channel_base", "channel_max", "num_fp16_res", "conv_clamp")
# Adam before the lazy-regularisation correction (StyleGAN2 appendix B), applied in configure_optimizers.
DEFAULT_OPTIMIZER: dict[str, Any] = {"_target_": OPTIMIZER_TARGET, "_partial_": True, "lr": 0.0025,
                                     "betas": [0.0, 0.99], "eps": 1e-8}


@dataclass(frozen=True)
class LossConfig:
    """StyleGAN2 regularisers (NVlabs ``training/loss.py`` ``StyleGAN2Loss``; lazy regularisation, StyleGAN2 sec. 3.1).

    Attributes:
        r1_gamma: R1 weight gamma (Mescheder et al. 2018, eq. 9; penalty ``gamma / 2 * ||grad D(x)||^2``);
            NVlabs heuristic ``0.0002 * R^2 / batch``. 0 = no R1.
        r1_interval: minibatches between R1 steps (16); the penalty is multiplied by it.
        pl_weight: path-length weight (StyleGAN2 eq. 4; 2). 0 = none.
        pl_interval: minibatches between path-length steps (4).
        pl_decay: decay of the running mean path length ``a`` (0.01).
        pl_batch_shrink: the path-length minibatch is ``batch // pl_batch_shrink`` (2).
        style_mixing_prob: probability of style mixing per G minibatch (StyleGAN sec. 3.1; 0.9).
    """

    r1_gamma: float = 10.0
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_interval: int = 4
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    style_mixing_prob: float = 0.9

    def check(self, where: str) -> None:
        at_least(where, 1, r1_interval=self.r1_interval, pl_interval=self.pl_interval,
                 pl_batch_shrink=self.pl_batch_shrink)
        at_least(where, 0.0, r1_gamma=self.r1_gamma)
        at_least(where, 0.0, pl_weight=self.pl_weight)
        in_range(where, 0, 1, pl_decay=self.pl_decay)
        in_range(where, 0, 1, style_mixing_prob=self.style_mixing_prob)


@dataclass(frozen=True)
class AugmentConfig:
    """ADA: the augmentation pipeline and its controller (Karras et al. 2020b, sec. 3; :mod:`~.ada`).

    Attributes:
        pipeline: :data:`facegen.models.stylegan2.ada.PIPELINES` name (``"bgc"``); ``None`` = no augmentation
            (as ``augment: null``).
        p: initial (or, with ``target=None``, fixed) augmentation probability.
        target: target of ``r_t = E[sign(D(x_real))]`` (0.6); ``None`` = keep ``p`` fixed.
        interval: minibatches between adjustments of ``p`` (4).
        kimg: thousands of images over which ``p`` can move by 1 (500).
    """

    pipeline: str | None = "bgc"
    p: float = 0.0
    target: float | None = 0.6
    interval: int = 4
    kimg: float = 500.0

    def check(self, where: str) -> None:
        if self.pipeline is not None and self.pipeline not in PIPELINES:
            raise ConfigError(f"{where}.pipeline: unknown ADA pipeline {self.pipeline!r}"
                              f"{did_you_mean(self.pipeline, list(PIPELINES))} (known: {', '.join(PIPELINES)})")
        in_range(where, 0, 1, p=self.p)
        at_least(where, 1, interval=self.interval)
        if self.kimg <= 0:
            raise ConfigError(f"{where}.kimg: must be > 0, got {self.kimg}")


@dataclass(frozen=True)
class EMAConfig:
    """Generator EMA (:class:`facegen.callbacks.ema.GeneratorEMA`, NVlabs ``ema_kimg``/``ema_rampup``).

    Attributes:
        kimg: half-life of the EMA in thousands of images (NVlabs auto: ``batch * 10 / 32``).
        rampup: early in training the half-life is at most ``cur_nimg * rampup`` images (``None`` = off).
    """

    kimg: float = 10.0
    rampup: float | None = 0.05

    def check(self, where: str) -> None:
        at_least(where, 0.0, kimg=self.kimg)
        at_least(where, 0.0, rampup=self.rampup)


@dataclass(frozen=True)
class GridConfig:
    """Fixed-seed sample grids of ``G_ema`` (:class:`facegen.callbacks.image_grid.ImageGrid`, NVlabs ``fakes*.png``).

    Attributes:
        every_kimg: interval in thousands of images (0 = only at the start of fitting).
        rows, cols: grid size; seed: seed of the fixed latents; truncation_psi: truncation of the samples.
    """

    every_kimg: float = 50.0
    rows: int = 4
    cols: int = 4
    seed: int = 0
    truncation_psi: float = 1.0

    def check(self, where: str) -> None:
        at_least(where, 0.0, every_kimg=self.every_kimg)
        at_least(where, 1, rows=self.rows)
        at_least(where, 1, cols=self.cols)


@dataclass(frozen=True)
class RegionConfig:
    """Region loss (Igaue et al. 2025; :mod:`facegen.models.stylegan2.region`): local discriminators on crops.

    Attributes:
        weight: weight of the region terms in the G, D and R1 losses (0 = off: no region networks).
        regions: landmark regions with their own discriminator (``eyes``, ``mouth``, ``brows``, ...).
        landmarks: landmarks file (CSV/JSON, :func:`facegen.data.keypoints.load_keypoints`; the mean over its
            images places the boxes) or ``None`` for ``mean_template(img_resolution, template_box)``.
        template_box: template box ``(left, top, right, bottom)`` as image fractions (``None`` = the default box).
        crop: crop side in pixels (power of two >= 8); margin: box margin, a fraction of the region's size.
    """

    weight: float = 0.0
    regions: tuple[str, ...] = ("eyes",)
    landmarks: str | None = None
    template_box: tuple[float, float, float, float] | None = None
    crop: int = 16
    margin: float = 0.25

    def check(self, where: str) -> None:
        at_least(where, 0.0, weight=self.weight)
        at_least(where, 0.0, margin=self.margin)
        if self.weight > 0 and not self.regions:
            raise ConfigError(f"{where}.regions: at least one region when {where}.weight > 0")
        if self.weight > 0 and (self.crop < 8 or self.crop & (self.crop - 1)):
            raise ConfigError(f"{where}.crop: must be a power of two >= 8, got {self.crop}")


def discriminator_spec(value: Mapping[str, Any] | None, generator: Mapping[str, Any],
                       where: str = "model.discriminator") -> dict[str, Any]:
    """The discriminator spec: :func:`facegen.config.spec.complete` with :data:`SHARED_SIZES` it does not set taken from
    ``generator`` (NVlabs trains G and D with the same ``channel_base``/``channel_max``/fp16/clamp)."""
    spec = complete(value, DEFAULT_DISCRIMINATOR, where)
    if spec.get("_target_") == DISCRIMINATOR_TARGET:
        spec.update({k: generator[k] for k in SHARED_SIZES if k not in spec and k in generator})
    return spec


__all__ = ["AugmentConfig", "EMAConfig", "GridConfig", "LossConfig", "RegionConfig", "DEFAULT_GENERATOR",
           "DEFAULT_DISCRIMINATOR", "DEFAULT_OPTIMIZER", "SHARED_SIZES", "discriminator_spec"]
