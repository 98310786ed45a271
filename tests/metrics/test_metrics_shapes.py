"""Shape checks of the metrics: facegen.shapes wording (MeshFormatError for meshes, ShapeError otherwise)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.errors import MeshFormatError, ShapeError
from facegen.metrics import (
    avd,
    draw_triplets,
    identity_decomposition_error,
    per_vertex_std,
)
from facegen.metrics.fid import FidKid


def test_mesh_metrics_name_the_mesh():
    with pytest.raises(MeshFormatError, match=r"^x: expected shape \[V, 3\], got \[5\]"):
        avd(np.zeros(5), np.zeros(5))
    with pytest.raises(MeshFormatError, match=r"^x: expected shape \[\*, V, 3\], got \[2, 5, 2\]"):
        avd(torch.zeros(2, 5, 2), torch.zeros(2, 5, 2))
    with pytest.raises(MeshFormatError, match=r"^meshes: expected shape \[S, V, 3\], got \[5, 3\]"):
        per_vertex_std(np.zeros((5, 3)))
    with pytest.raises(MeshFormatError, match=r"^meshes: expected shape \[S, V, 3\], got \[5, 3\]"):
        identity_decomposition_error([np.zeros((5, 3))])


def test_triplet_labels_one_per_mesh():
    with pytest.raises(ShapeError, match=r"^expression: expected shape \[3\], got \[2\]; one style label per mesh"):
        draw_triplets([0, 1, 2], [0, 1], n=2, seed=0)
    assert issubclass(ShapeError, ValueError)   # callers catching ValueError still do


def test_fid_images_rgb_or_grey():
    metric = FidKid(kid_subsets=2, kid_subset_size=2)
    with pytest.raises(ShapeError, match=r"^images: expected shape \[B, 3, H, W\], got \[2, 3, 8\]"):
        metric.update(torch.zeros(2, 3, 8), real=True)
