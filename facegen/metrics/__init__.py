"""Evaluation metrics (mesh metrics of FaceTuneGAN in :mod:`facegen.metrics.mesh`)."""
from facegen.metrics.mesh import (
    avd,
    draw_triplets,
    error_stats,
    identity_decomposition_error,
    per_vertex_error,
    per_vertex_std,
)

__all__ = [
    "avd",
    "draw_triplets",
    "error_stats",
    "identity_decomposition_error",
    "per_vertex_error",
    "per_vertex_std",
]
