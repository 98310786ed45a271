"""FaceTuneGAN (Olivier et al. 2023): 3D facial expression transfer with spiral mesh convolutions."""
from facegen.models.facetunegan.evaluation import (
    evaluate_facetunegan,
    log_rows,
    transfer_errors,
    write_tables,
)
from facegen.models.facetunegan.module import FaceTuneGAN
from facegen.models.facetunegan.networks import (
    ContentEncoder,
    Decoder,
    Discriminator,
    Generator,
    StyleEncoder,
    StyleMapping,
)

__all__ = [
    "ContentEncoder",
    "Decoder",
    "Discriminator",
    "FaceTuneGAN",
    "Generator",
    "StyleEncoder",
    "StyleMapping",
    "evaluate_facetunegan",
    "log_rows",
    "transfer_errors",
    "write_tables",
]
