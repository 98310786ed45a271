"""StyleGAN2 (Karras et al. 2020) with ADA: networks, augmentation, losses, config blocks and the LightningModule."""
from facegen.models.stylegan2.config import (
    AugmentConfig,
    EMAConfig,
    GridConfig,
    LossConfig,
    RegionConfig,
)
from facegen.models.stylegan2.discriminator import Discriminator
from facegen.models.stylegan2.module import StyleGAN2
from facegen.models.stylegan2.networks import Generator, StyleGANInputError

__all__ = ["Generator", "Discriminator", "StyleGAN2", "StyleGANInputError", "AugmentConfig", "EMAConfig",
           "GridConfig", "LossConfig", "RegionConfig"]
