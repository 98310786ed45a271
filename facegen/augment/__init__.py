"""Motion-transfer augmentation and latent sample selection (the macaque recipe, Igaue et al. 2025).

- :mod:`facegen.data.keypoints`: landmark files (CSV / JSON, named regions) and the mean template;
- :mod:`facegen.augment.driving`: driving motion from the procedural 3D face or a landmark-annotated video;
- :mod:`facegen.augment.retarget` (driving motion onto a still) and :mod:`facegen.augment.tps` (thin-plate-spline
  warps); :mod:`facegen.augment.motion_transfer`: :func:`augment_dataset` (stills + warped frames into a zip);
- :mod:`facegen.augment.selection`: W inversion of a pool, subset selection, latent coverage.

``python -m facegen.augment root=<images> out=<folder>`` runs :func:`augment_dataset` (conf/augment.yaml).
"""
from facegen.augment.driving import (
    EXPRESSION_ALIASES,
    DrivingMotion,
    faceworld_driving,
    video_driving,
)
from facegen.augment.motion_transfer import AugmentResult, augment_dataset
from facegen.augment.retarget import retarget
from facegen.augment.selection import (
    CoverageBasis,
    SelectionError,
    fit_coverage_basis,
    invert_pool,
    latent_coverage,
    plot_coverage,
    select_subset,
)
from facegen.augment.tps import tps_warp
from facegen.data.keypoints import (
    DEFAULT_TEMPLATE_BOX,
    MULTIPIE_68_REGIONS,
    YALE_TEMPLATE_BOX,
    KeypointFileError,
    Keypoints,
    load_keypoints,
    mean_template,
)

__all__ = [
    "DEFAULT_TEMPLATE_BOX", "EXPRESSION_ALIASES", "MULTIPIE_68_REGIONS", "YALE_TEMPLATE_BOX", "AugmentResult",
    "CoverageBasis", "DrivingMotion", "KeypointFileError", "Keypoints", "SelectionError", "augment_dataset",
    "faceworld_driving", "fit_coverage_basis", "invert_pool", "latent_coverage", "load_keypoints", "mean_template",
    "plot_coverage", "retarget", "select_subset", "tps_warp", "video_driving",
]
