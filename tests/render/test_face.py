"""FaceRenderer on the procedural face: landmarks on the mask, pose and parameters; fitting recovers them."""
from __future__ import annotations

import math

import pytest
import torch

from facegen.morphable import ProceduralFaceModel
from facegen.render import FaceRenderer, FitConfig, RenderInputError, fit_face


@pytest.fixture(scope="module")
def renderer():
    return FaceRenderer(ProceduralFaceModel(seed=0), image_size=64)


def test_render_shapes_and_landmarks_on_face(renderer):
    p = renderer.zero_params(2)
    p[1, renderer.layout.rotation] = torch.tensor([0.0, 0.5, 0.0])
    out = renderer(p)
    assert out.image.shape == (2, 3, 64, 64) and out.mask.shape == (2, 1, 64, 64)
    assert 0.0 <= out.image.min() and out.image.max() <= 1.0
    uv = out.landmarks.round().long()
    on_face = out.mask[torch.arange(2)[:, None], 0, uv[..., 1], uv[..., 0]]
    assert on_face[0, 17:].all()               # frontal: brows, eyes, nose, mouth land on the face mask
    # Symmetric face: the nose tip (landmark 30, Multi-PIE) projects onto the vertical centre line.
    assert abs(out.landmarks[0, 30, 0].item() - renderer.project(renderer.model.landmarks(
        renderer.model.vertices()))[0, 30, 0].item()) < 1e-4
    # Yaw turns the face: the subject's left (x > 0) eye corner moves in image x by a visible amount.
    assert abs(out.landmarks[1, 45, 0] - out.landmarks[0, 45, 0]) > 2.0


def test_translation_moves_landmarks_by_projected_offset(renderer):
    p = renderer.zero_params(2)
    p[1, renderer.layout.translation] = torch.tensor([10.0, 0.0, 0.0])
    lm = renderer(p).landmarks
    f_px = 32.0 / math.tan(math.radians(renderer.camera.fov_degrees) / 2)
    depth = renderer.camera.transform(renderer.model.landmarks(renderer.model.vertices()))[0, :, 2]
    torch.testing.assert_close(lm[1, :, 0] - lm[0, :, 0], f_px * 10.0 / depth, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(lm[1, :, 1], lm[0, :, 1])


def test_gradients_reach_every_parameter_group(renderer):
    p = renderer.zero_params(1).requires_grad_()
    target = torch.rand(1, 3, 64, 64)
    out = renderer(p)
    ((out.image - target).abs() * out.mask).mean().add(out.landmarks.mean() * 1e-3).backward()
    for name, part in renderer.layout.split(p.grad).items():
        assert part.abs().sum() > 0, name


def _fit_errors(renderer, truth, result):
    fitted, true = renderer.layout.split(result.params), renderer.layout.split(truth)
    exp_error = (fitted["expression"] - true["expression"]).abs()                  # controls in [0, 1]
    rot_error = (fitted["rotation"] - true["rotation"]).abs().max().item() * 180 / math.pi
    return exp_error, rot_error


def test_fit_recovers_expression_and_pose():
    """Done-when item 1 (one case here; eight in experiments/face_world/fit_eval.py): expression within
    10 % of the controls' [0, 1] range, rotation within 2 degrees."""
    torch.manual_seed(0)
    model = ProceduralFaceModel(seed=0)
    renderer = FaceRenderer(model, image_size=128)
    g = torch.Generator().manual_seed(0)
    truth = renderer.layout.join(
        identity=0.7 * torch.randn(1, model.n_id, generator=g),
        expression=0.8 * model.expression_presets["smile"][None],
        albedo=0.5 * torch.randn(1, model.n_alb, generator=g),
        sh_coeffs=0.1 * torch.randn(1, 27, generator=g),
        rotation=torch.tensor([[0.1, -0.3, 0.05]]),
        translation=torch.tensor([[5.0, -3.0, 10.0]]))
    with torch.no_grad():
        target = renderer(truth)
    result = fit_face(renderer, target.image, target.landmarks)
    exp_error, rot_error = _fit_errors(renderer, truth, result)
    print(f"procedural fit: {result.seconds:.1f} s, expression error mean {exp_error.mean():.3f} "
          f"max {exp_error.max():.3f}, rotation {rot_error:.2f} deg")
    assert exp_error.max() < 0.1 and rot_error < 2.0
    first_photo = next(step["photo"] for step in result.history if step["stage"] == "colour")
    final = result.rendering
    final_photo = ((final.image - target.image).pow(2).sum(1, keepdim=True).add(1e-8).sqrt() * final.mask).sum() \
        / final.mask.sum()
    assert final_photo < 0.5 * first_photo
    assert [h["stage"] for h in result.history].count("lm") >= 1


def test_levenberg_marquardt_converges_to_planted_parameters():
    """From a perturbed truth, the Levenberg-Marquardt stage alone (exact Jacobian for fixed visibility,
    active set at the expression bounds) recovers the planted parameters."""
    model = ProceduralFaceModel(seed=0)
    renderer = FaceRenderer(model, image_size=48)
    g = torch.Generator().manual_seed(3)
    expression = 0.6 * model.expression_presets["sadness"][None]
    truth = renderer.layout.join(
        identity=0.5 * torch.randn(1, model.n_id, generator=g), expression=expression,
        albedo=0.5 * torch.randn(1, model.n_alb, generator=g), sh_coeffs=0.1 * torch.randn(1, 27, generator=g),
        rotation=torch.tensor([[0.05, 0.2, 0.0]]), translation=torch.tensor([[2.0, 1.0, 0.0]]))
    with torch.no_grad():
        target = renderer(truth)
    start = truth + 0.02 * torch.randn(truth.shape, generator=g)
    start[:, renderer.layout.expression] = (start[:, renderer.layout.expression]).clamp(0, 1)
    config = FitConfig(pose_steps=0, landmark_steps=0, colour_steps=0, photo_steps=0, lm_steps=8,
                       lm_prior_start=1.0, lm_tol=0.0)
    result = fit_face(renderer, target.image, target.landmarks, init=start, config=config)
    exp_error, rot_error = _fit_errors(renderer, truth, result)
    start_error, _ = _fit_errors(renderer, truth, type(result)(params=start, rendering=None))
    losses = [h["loss"] for h in result.history if h["stage"] == "lm"]
    assert losses[-1] < 0.05 * losses[0]
    assert exp_error.max() < 0.5 * start_error.max() and exp_error.max() < 0.03 and rot_error < 0.2
    assert (result.params[:, renderer.layout.expression] >= 0).all()


def test_fit_rejects_bad_targets(renderer):
    with pytest.raises(RenderInputError, match=r"landmarks: expected shape \[1, 68, 2\], got \[1, 5, 2\]"):
        fit_face(renderer, torch.zeros(1, 3, 64, 64), torch.zeros(1, 5, 2))
