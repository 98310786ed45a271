"""Shape checks of the morphable models and the parameter layout: facegen.shapes wording, ModelLayoutError."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.morphable import (
    ModelLayoutError,
    MorphableModel,
    ParamLayout,
    euler_to_matrix,
    load_flame,
    regions_from_landmarks,
)

MEAN = torch.arange(12.0).view(4, 3)
FACES = torch.tensor([[0, 1, 2], [1, 2, 3]])


def test_model_arrays_name_the_model_and_the_array():
    with pytest.raises(ModelLayoutError, match=r"^toy: mean_shape: expected shape \[V, 3\], got \[4, 2\]; mm"):
        MorphableModel(MEAN[:, :2], FACES, name="toy")
    with pytest.raises(ModelLayoutError, match=r"^toy: exp_basis: expected shape \[K, 4, 3\], got \[1, 5, 3\]"):
        MorphableModel(MEAN, FACES, exp_basis=torch.ones(1, 5, 3), name="toy")
    with pytest.raises(ModelLayoutError, match=r"^toy: faces: expected shape \[F, 3\], got \[2, 4\]"):
        MorphableModel(MEAN, torch.zeros(2, 4, dtype=torch.long), name="toy")
    with pytest.raises(ModelLayoutError, match=r"^toy: albedo_mean: expected shape \[4, 3\], got \[3, 3\]"):
        MorphableModel(MEAN, FACES, albedo_mean=torch.ones(3, 3), name="toy")
    with pytest.raises(ModelLayoutError, match=r"^toy: landmark_indices: expected shape \[68\], got \[3\]"):
        MorphableModel(MEAN, FACES, landmark_indices=[0, 1, 2], name="toy")


def test_evaluation_checks_coefficients_and_vertices():
    model = MorphableModel(MEAN, FACES, id_basis=torch.ones(2, 4, 3), landmark_indices=torch.zeros(68, dtype=torch.long),
                           name="toy")
    with pytest.raises(ModelLayoutError, match=r"^toy: alb_coeffs: expected shape \[B, 0\], got \[2\]"):
        model.albedo(torch.zeros(2))
    with pytest.raises(ModelLayoutError, match=r"^toy: vertices: expected shape \[B, 4, 3\], got \[1, 5, 3\]"):
        model.landmarks(torch.zeros(1, 5, 3))
    with pytest.raises(ModelLayoutError, match=r"^toy: crop indices: expected shape \[N\], got \[1, 2\]"):
        model.crop([[0, 1]])


def test_param_layout_join_wants_one_batch_size():
    layout = ParamLayout(2, 2, 2)
    with pytest.raises(ModelLayoutError, match=r"^parts\['rotation'\]: expected shape \[2, 3\], got \[1, 3\]; every "
                                               r"part has the batch size of parts\['identity'\]"):
        layout.join(identity=torch.zeros(2, 2), rotation=torch.zeros(1, 3))


def test_flame_shapedirs_must_match_the_template(tmp_path):
    np.savez(tmp_path / "flame.npz", v_template=np.zeros((4, 3)), shapedirs=np.zeros((5, 3, 10)), f=FACES.numpy())
    with pytest.raises(ModelLayoutError, match=r"flame.npz: shapedirs: expected shape \[4, 3, K\], got \[5, 3, 10\]"):
        load_flame(tmp_path / "flame.npz")


def test_coefficients_share_one_batch_size():
    model = MorphableModel(MEAN, FACES, id_basis=torch.ones(2, 4, 3), exp_basis=torch.ones(1, 4, 3), name="toy")
    with pytest.raises(ModelLayoutError, match=r"^toy: exp_coeffs: expected shape \[2, 1\], got \[3, 1\]; the batch "
                                               r"size of the other coefficients"):
        model.vertices(torch.zeros(2, 2), torch.zeros(3, 1))


def test_rotation_and_region_inputs():
    with pytest.raises(ModelLayoutError, match=r"^rotation: expected shape \[\*, 3\], got \[2, 2\]; XYZ Euler"):
        euler_to_matrix(torch.zeros(2, 2))
    with pytest.raises(ModelLayoutError, match=r"^landmark_indices: expected shape \[68\], got \[5\]"):
        regions_from_landmarks(np.zeros((100, 3)), np.arange(5))
