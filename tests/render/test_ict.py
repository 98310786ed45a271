"""ICT-FaceKit (real data): the neutral face renders to a face-shaped mask, and fitting recovers it."""
from __future__ import annotations

import math

import pytest
import torch

from facegen.morphable import load_ict_facekit
from facegen.render import FaceRenderer, fit_face

pytestmark = pytest.mark.realdata


_MODELS: dict = {}


@pytest.fixture
def ict(shared_data, tmp_path_factory):
    """The ICT face-area model, loaded once per test session."""
    root = shared_data / "ict_facekit"
    if root not in _MODELS:
        _MODELS[root] = load_ict_facekit(root, cache_dir=tmp_path_factory.mktemp("ict_cache"))
    return _MODELS[root]


def test_ict_neutral_renders_face_shaped_mask(ict):
    renderer = FaceRenderer(ict, image_size=96)
    out = renderer(renderer.zero_params(1))
    mask = out.mask[0, 0]
    rows, cols = mask.any(1).nonzero().squeeze(1), mask.any(0).nonzero().squeeze(1)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert 0.25 < mask.mean() < 0.8 and height > width                 # face + neck: taller than wide
    mirrored = mask.flip(1)
    iou = (mask * mirrored).sum() / ((mask + mirrored) > 0).sum()
    assert iou > 0.9                                                   # left-right symmetric silhouette
    lm = out.landmarks[0]
    u, v = lm[30].round().long().tolist()
    assert mask[v, u] == 1                                             # nose tip on the face
    for eye in (lm[36:42], lm[42:48]):                                 # the face area has no eyeballs
        u, v = eye.mean(0).round().long().tolist()
        assert mask[v, u] == 0
    assert lm[36:48, 0].min() > cols.min() and lm[36:48, 0].max() < cols.max()


def test_ict_fit_recovers_expression_and_pose(ict):
    renderer = FaceRenderer(ict, image_size=128)
    g = torch.Generator().manual_seed(0)
    expression = torch.zeros(1, ict.n_exp)
    for name, value in {"jawOpen": 0.4, "mouthSmile_L": 0.7, "mouthSmile_R": 0.7, "browInnerUp_L": 0.5,
                        "browInnerUp_R": 0.5, "eyeBlink_L": 0.3}.items():
        expression[0, ict.exp_names.index(name)] = value
    truth = renderer.layout.join(
        identity=0.7 * torch.randn(1, ict.n_id, generator=g), expression=expression,
        albedo=0.5 * torch.randn(1, ict.n_alb, generator=g), sh_coeffs=0.1 * torch.randn(1, 27, generator=g),
        rotation=torch.tensor([[0.1, -0.3, 0.05]]), translation=torch.tensor([[5.0, -3.0, 10.0]]))
    with torch.no_grad():
        target = renderer(truth)
    result = fit_face(renderer, target.image, target.landmarks)
    fitted, true = renderer.layout.split(result.params), renderer.layout.split(truth)
    exp_error = (fitted["expression"] - true["expression"]).abs()                  # ARKit range [0, 1]
    rot_error = (fitted["rotation"] - true["rotation"]).abs().max().item() * 180 / math.pi
    print(f"ICT fit: {result.seconds:.1f} s, expression error mean {exp_error.mean():.3f} "
          f"max {exp_error.max():.3f}, rotation {rot_error:.2f} deg")
    assert exp_error.max() < 0.1 and rot_error < 2.0
