"""Shape checks at facegen.render's entry points: facegen.shapes wording, RenderInputError."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.morphable import ProceduralFaceModel
from facegen.render import (
    FaceRenderer,
    OrthographicCamera,
    PerspectiveCamera,
    RenderInputError,
    fit_face,
    interpolate,
    rasterize,
    render_heatmap,
    sh_shading,
    vertex_normals,
)

TRIANGLE = torch.tensor([[0, 1, 2]])


def test_rasterize_names_the_bad_tensor():
    with pytest.raises(RenderInputError, match=r"^verts_ndc: expected shape \[B, V, 3\], got \[1, 3, 2\]; NDC"):
        rasterize(torch.zeros(1, 3, 2), TRIANGLE, 8)
    with pytest.raises(RenderInputError, match=r"^faces: expected shape \[F, 3\], got \[1, 4\]"):
        rasterize(torch.ones(1, 4, 3), torch.tensor([[0, 1, 2, 3]]), 8)
    with pytest.raises(RenderInputError, match=r"^faces: expected dtype int64 \(or int32\), got torch.float32"):
        rasterize(torch.ones(1, 3, 3), TRIANGLE.float(), 8)


def test_interpolate_accepts_a_shared_batch_and_rejects_others():
    fragments = rasterize(torch.ones(2, 3, 3), TRIANGLE, 8)
    assert interpolate(torch.ones(1, 3, 2), TRIANGLE, fragments).shape == (2, 8, 8, 2)   # [1, V, C] is shared
    with pytest.raises(RenderInputError, match=r"^attrs: expected shape \[2, V, C\], got \[3, 2\]"):
        interpolate(torch.ones(3, 2), TRIANGLE, fragments)


def test_sh_shading_and_normals():
    with pytest.raises(RenderInputError, match=r"^sh_coeffs: expected shape \[2, 27\], got \[2, 26\]; 9 SH bands"):
        sh_shading(torch.zeros(2, 4, 4, 3), torch.zeros(2, 26))
    with pytest.raises(RenderInputError, match=r"^sh_coeffs: expected shape \[2, 27\], got \[1, 27\]"):
        sh_shading(torch.zeros(2, 4, 3), torch.zeros(1, 27))
    with pytest.raises(RenderInputError, match=r"^normals: expected shape \[B, \*, \*, 3\], got \[1, 4, 4, 2\]"):
        sh_shading(torch.zeros(1, 4, 4, 2), torch.zeros(1, 27))
    with pytest.raises(RenderInputError, match=r"^vertices: expected shape \[B, V, 3\], got \[3, 3\]"):
        vertex_normals(torch.zeros(3, 3), TRIANGLE)
    with pytest.raises(RenderInputError, match=r"^faces: expected shape \[F, 3\], got \[3\]"):
        vertex_normals(torch.zeros(1, 3, 3), TRIANGLE[0])


@pytest.mark.parametrize("camera", [PerspectiveCamera(), OrthographicCamera()])
def test_cameras_want_world_points(camera):
    with pytest.raises(RenderInputError, match=r"^points: expected shape \[B, V, 3\], got \[5, 3\]; world points in mm"):
        camera.transform(torch.zeros(5, 3))


def test_pictures_check_the_mesh():
    vertices, faces = np.eye(3), np.array([[0, 1, 2]])
    with pytest.raises(RenderInputError, match=r"^faces: expected shape \[F, 3\], got \[3\]"):
        render_heatmap(vertices, faces[0], np.zeros(3), vmax=1.0, size=8)
    with pytest.raises(RenderInputError, match=r"^values: expected shape \[3\], got \[3, 1\]; one value per vertex"):
        render_heatmap(vertices, faces, np.zeros((3, 1)), vmax=1.0, size=8)


def test_fit_face_checks_the_targets_against_the_renderer():
    renderer = FaceRenderer(ProceduralFaceModel(seed=0), image_size=16)
    with pytest.raises(RenderInputError, match=r"^image: expected shape \[B, 3, 16, 16\], got \[1, 3, 32, 32\]"):
        fit_face(renderer, torch.zeros(1, 3, 32, 32), torch.zeros(1, 68, 2))
    with pytest.raises(RenderInputError, match=r"^mask: expected shape \[1, 1, 16, 16\], got \[1, 16, 16\]"):
        fit_face(renderer, torch.zeros(1, 3, 16, 16), torch.zeros(1, 68, 2), mask=torch.ones(1, 16, 16))


def test_interpolate_checks_the_faces():
    fragments = rasterize(torch.ones(1, 3, 3), TRIANGLE, 8)
    with pytest.raises(RenderInputError, match=r"^faces: expected shape \[F, 3\], got \[3\]"):
        interpolate(torch.ones(1, 3, 2), TRIANGLE[0], fragments)
