"""FaceTuneGAN (Olivier et al. 2023): 3D facial expression transfer with spiral mesh convolutions."""
from facegen.models.facetunegan.config import (
    EvaluationConfig,
    HierarchyConfig,
    LossConfig,
    ScheduleConfig,
)
from facegen.models.facetunegan.evaluation import (
    NOT_COMPUTED,
    evaluate_facetunegan,
    log_rows,
    not_computed,
    skipped_tables,
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
    "NOT_COMPUTED",
    "ContentEncoder",
    "Decoder",
    "Discriminator",
    "EvaluationConfig",
    "FaceTuneGAN",
    "Generator",
    "HierarchyConfig",
    "LossConfig",
    "ScheduleConfig",
    "StyleEncoder",
    "StyleMapping",
    "evaluate_facetunegan",
    "log_rows",
    "not_computed",
    "skipped_tables",
    "transfer_errors",
    "write_tables",
]
