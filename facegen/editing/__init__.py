"""Latent-space editing of StyleGAN2 generators: projection (GAN inversion) of images into W / W+."""
from facegen.editing.projection import (
    LPIPSLoss,
    PixelMSSSIMLoss,
    ProjectionInputError,
    ProjectionResult,
    load_targets,
    make_projection_loss,
    project,
    save_projection,
)

__all__ = ["LPIPSLoss", "PixelMSSSIMLoss", "ProjectionInputError", "ProjectionResult", "load_targets",
           "make_projection_loss", "project", "save_projection"]
