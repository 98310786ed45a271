"""Morphable face models (all in millimetres): the procedural default face, ICT-FaceKit, FLAME, BFM."""
from facegen.morphable.base import (
    CroppedModel,
    ModelLayoutError,
    MorphableModel,
    regions_from_landmarks,
)
from facegen.morphable.bfm import load_bfm
from facegen.morphable.flame import load_flame
from facegen.morphable.ict import load_ict_facekit
from facegen.morphable.params import (
    ParamLayout,
    ParamRanges,
    euler_to_matrix,
    sample_params,
)
from facegen.morphable.procedural import (
    EXPRESSION_NAMES,
    FACESCAPE_EXPRESSIONS,
    ProceduralFaceModel,
)

__all__ = [
    "EXPRESSION_NAMES", "FACESCAPE_EXPRESSIONS", "CroppedModel", "ModelLayoutError", "MorphableModel", "ParamLayout",
    "ParamRanges", "ProceduralFaceModel", "euler_to_matrix", "load_bfm", "load_flame", "load_ict_facekit",
    "regions_from_landmarks", "sample_params",
]
