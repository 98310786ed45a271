"""The procedural default face: determinism, anatomy, landmarks, gradients, identity-aware expressions."""
from __future__ import annotations

import pytest
import torch

from facegen.errors import FacegenError
from facegen.morphable import (
    FACESCAPE_EXPRESSIONS,
    CroppedModel,
    MorphableModel,
    ProceduralFaceModel,
)


@pytest.fixture(scope="module")
def model() -> ProceduralFaceModel:
    return ProceduralFaceModel(seed=0)


def _control(model, name: str, value: float = 1.0, batch: int = 1) -> torch.Tensor:
    coeffs = torch.zeros(batch, model.n_exp)
    coeffs[:, model.exp_names.index(name)] = value
    return coeffs


def test_deterministic_from_seed(model):
    again = ProceduralFaceModel(seed=0)
    other = ProceduralFaceModel(seed=1)
    for name, buffer in model.state_dict().items():
        assert torch.equal(buffer, again.state_dict()[name]), name
    assert torch.equal(model.mean_shape, other.mean_shape)          # the template does not depend on the seed
    n_global = model.id_names.index("random_0")
    assert torch.equal(model.id_basis[:n_global], other.id_basis[:n_global])
    assert not torch.allclose(model.id_basis[n_global:], other.id_basis[n_global:])


def test_sizes_and_units_are_an_adult_face_in_mm(model):
    assert model.unit == "mm"
    assert 2000 <= model.n_vertices <= 5000
    assert (model.n_id, model.n_exp, model.n_alb) == (20, 28, 10)
    v = model.mean_shape
    lm = model.landmarks(v[None])[0]
    chin_to_forehead = v[:, 1].max() - lm[8, 1]
    width = v[:, 0].max() - v[:, 0].min()
    depth = lm[30, 2] - model.mean_shape[model.rig_pivot_anchors, 2].mean()   # nose tip to the ear plane
    assert 130 < chin_to_forehead < 165 and 125 < width < 155 and 80 < depth < 110
    assert int(v[:, 2].argmax()) == int(model.landmark_indices[30])          # the nose tip sticks out most
    # vertical order: brows above eyes above nose tip above mouth above chin
    assert lm[17:27, 1].min() > lm[36:48, 1].max() > lm[30, 1] > lm[48:68, 1].max() > lm[8, 1]
    # bilateral symmetry of the mean face: landmark 0 mirrors 16, 36 mirrors 45, 48 mirrors 54
    for a, b in ((0, 16), (36, 45), (48, 54), (17, 26)):
        assert torch.allclose(lm[a] * torch.tensor([-1.0, 1.0, 1.0]), lm[b], atol=1e-4)
    assert lm[36, 0] < 0 < lm[45, 0]   # Multi-PIE point 36 is the subject's right eye (image left)
    faces = model.faces
    assert faces.min() == 0 and faces.max() == model.n_vertices - 1


def test_landmarks_lie_in_their_regions(model):
    regions = {name: set(idx.tolist()) for name, idx in model.regions.items()}
    lm = model.landmark_indices.tolist()
    groups = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eye_right": range(36, 42),
              "eye_left": range(42, 48), "lips": range(48, 68), "mouth": range(48, 68)}
    for region, points in groups.items():
        outside = [k for k in points if lm[k] not in regions[region]]
        assert not outside, f"landmarks {outside} outside region {region}"
    assert regions["eyes"] == regions["eye_left"] | regions["eye_right"]
    assert regions["lips"] <= regions["mouth"] <= regions["face"] | regions["jaw"]
    assert set(model.regions) == {"face", "eye_left", "eye_right", "eyes", "brows", "nose", "mouth", "lips", "jaw",
                                  "cheeks"}


def test_gradients_flow_to_identity_and_expression(model):
    torch.manual_seed(0)
    id_coeffs = torch.randn(2, model.n_id, requires_grad=True)
    exp_coeffs = (0.5 * torch.rand(2, model.n_exp)).requires_grad_(True)
    target = model.vertices(torch.zeros(2, model.n_id), torch.zeros(2, model.n_exp))
    loss = (model.vertices(id_coeffs, exp_coeffs) - target).square().mean()
    loss.backward()
    assert torch.isfinite(id_coeffs.grad).all() and torch.isfinite(exp_coeffs.grad).all()
    assert (id_coeffs.grad.abs() > 0).all() and (exp_coeffs.grad.abs() > 0).all()
    # the gradient matches a central finite difference along a random direction
    direction = torch.randn_like(exp_coeffs)

    def f(eps: float) -> float:
        with torch.no_grad():
            return (model.vertices(id_coeffs, exp_coeffs + eps * direction) - target).square().mean().item()
    numeric = (f(1e-2) - f(-1e-2)) / 2e-2
    analytic = (exp_coeffs.grad * direction).sum().item()
    assert analytic == pytest.approx(numeric, rel=2e-2)


def test_fitting_recovers_expression_by_gradient_descent(model):
    torch.manual_seed(1)
    id_coeffs = torch.randn(1, model.n_id)
    target = model.vertices(id_coeffs, model.expression_presets["smile"][None])
    exp = torch.zeros(1, model.n_exp, requires_grad=True)
    optimiser = torch.optim.Adam([exp], lr=0.08)
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = (model.vertices(id_coeffs, exp) - target).norm(dim=-1).mean()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]


def test_delta_transfer_between_identities_is_measurably_wrong(model):
    """Expression offsets of identity A added to identity B's neutral differ from B's true expression."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randn(2, model.n_id, generator=generator)
    cases = {"jaw_open": _control(model, "jaw_open", batch=2),
             "mouth_stretch": model.expression_presets["mouth_stretch"].expand(2, -1),
             "smile": model.expression_presets["smile"].expand(2, -1)}
    report = []
    for name, exp in cases.items():
        neutral, posed = model.vertices(ids, None), model.vertices(ids, exp)
        transferred = neutral[1] + (posed[0] - neutral[0])
        error = (transferred - posed[1]).norm(dim=-1)
        moving = (posed[1] - neutral[1]).norm(dim=-1) > 1.0
        report.append(f"{name}: mean {error.mean():.2f} mm over all vertices, {error[moving].mean():.2f} mm over "
                      f"the {int(moving.sum())} moving vertices, max {error.max():.2f} mm")
        assert error[moving].mean() > 0.5, report[-1]
        assert error.max() > 2.0, report[-1]
        # the same identity transfers exactly
        assert torch.allclose(neutral[0] + (posed[0] - neutral[0]), posed[0], atol=1e-4)
    print("\n".join(report))


def test_exp_basis_is_the_mean_identity_linearisation(model):
    for name in ("smile_L", "jaw_open", "blink_R"):
        exact = model.vertices(None, _control(model, name))[0] - model.mean_shape
        assert torch.allclose(model.exp_basis[model.exp_names.index(name)], exact, atol=1e-4)
    # for a local control the linear basis is exact at the mean identity but not for another identity
    id_coeffs = 2.0 * torch.ones(1, model.n_id)
    exact = model.vertices(id_coeffs, _control(model, "smile_L")) - model.vertices(id_coeffs, None)
    assert (exact[0] - model.exp_basis[model.exp_names.index("smile_L")]).norm(dim=-1).max() > 0.5


def test_expression_presets_cover_facescape_in_order(model):
    assert len(FACESCAPE_EXPRESSIONS) == 20 and FACESCAPE_EXPRESSIONS[0] == "neutral"
    assert FACESCAPE_EXPRESSIONS[1:4] == ["smile", "mouth_stretch", "anger"]
    assert list(model.expression_presets) == FACESCAPE_EXPRESSIONS
    assert torch.equal(model.expression_presets["neutral"], torch.zeros(model.n_exp))
    for name, coeffs in model.expression_presets.items():
        assert coeffs.shape == (model.n_exp,) and coeffs.min() >= 0 and coeffs.max() <= 1
        if name != "neutral":
            moved = (model.vertices(None, coeffs[None])[0] - model.mean_shape).norm(dim=-1).max()
            assert moved > 2.0, name


def test_eyes_close_onto_each_identitys_lower_lid(model):
    ids = torch.randn(3, model.n_id, generator=torch.Generator().manual_seed(2)) * 1.5
    closed = model.vertices(ids, model.expression_presets["eye_closed"].expand(3, -1))
    opened = model.vertices(ids, None)
    lm_open, lm_closed = model.landmarks(opened), model.landmarks(closed)
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert ((lm_open[:, upper] - lm_open[:, lower]).norm(dim=-1) > 5.0).all()
        assert ((lm_closed[:, upper] - lm_closed[:, lower]).norm(dim=-1) < 0.5).all()


def test_jaw_opens_the_mouth_and_keeps_the_upper_face(model):
    open_mouth = model.landmarks(model.vertices(None, _control(model, "jaw_open")))[0]
    neutral = model.landmarks(model.mean_shape[None])[0]
    assert (open_mouth[66] - open_mouth[62]).norm() > 15.0          # inner lips part
    assert (neutral[66] - neutral[62]).norm() < 1e-4                # closed mouth at rest
    assert (open_mouth[17:48] - neutral[17:48]).norm(dim=-1).max() < 1e-4
    assert (open_mouth[8] - neutral[8])[1] < -8.0                  # chin goes down and back
    assert (open_mouth[8] - neutral[8])[2] < -8.0


def test_albedo_colours(model):
    albedo = model.albedo(torch.zeros(1, model.n_alb))[0]
    assert albedo.min() >= 0 and albedo.max() <= 1
    regions = model.regions
    lips = albedo[model.landmark_indices[[51, 57]]]
    cheek = albedo[regions["cheeks"]].mean(0)
    assert (lips[:, 0] / lips[:, 1] > cheek[0] / cheek[1]).all()    # lips redder than skin
    brows = albedo[model.landmark_indices[[19, 24]]]
    assert (brows.sum(-1) < cheek.sum() - 0.5).all()                 # brows darker
    darker = model.albedo(torch.eye(model.n_alb)[model.alb_names.index("skin_tone")][None])[0]
    assert darker[regions["cheeks"]].mean() < albedo[regions["cheeks"]].mean() - 0.1


def test_crop_keeps_the_nonlinear_model(model):
    face = model.regions["mouth"]
    cropped = model.crop(face)
    assert isinstance(cropped, CroppedModel) and cropped.n_vertices == len(face)
    assert cropped.faces.max() < len(face) and len(cropped.faces) > 0
    ids = torch.randn(2, model.n_id, generator=torch.Generator().manual_seed(3))
    exp = model.expression_presets["grin"].expand(2, -1)
    assert torch.allclose(cropped.vertices(ids, exp), model.vertices(ids, exp)[:, torch.sort(face).values])
    assert cropped.landmark_indices is None                           # the eyes were cropped away
    assert set(cropped.regions["lips"].tolist()) == set(range(len(face))) & set(cropped.regions["lips"].tolist())


def test_linear_model_crop_and_errors():
    mean = torch.arange(12.0).view(4, 3)
    faces = torch.tensor([[0, 1, 2], [1, 2, 3]])
    model = MorphableModel(mean, faces, id_basis=torch.ones(2, 4, 3), exp_basis=torch.ones(1, 4, 3),
                           regions={"face": [0, 3]})
    out = model.vertices(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5]]))
    assert torch.allclose(out[0], mean + 3.5)                        # hand-computed: 1 + 2 + 0.5
    cropped = model.crop([1, 2, 3])
    assert type(cropped) is MorphableModel
    assert cropped.faces.tolist() == [[0, 1, 2]] and cropped.regions["face"].tolist() == [2]
    with pytest.raises(FacegenError, match=r"morphable: id_coeffs: expected shape \[B, 2\], got \[1, 3\]"):
        model.vertices(torch.zeros(1, 3))
    with pytest.raises(FacegenError, match="no 68-point landmark"):
        model.landmarks(out)
    with pytest.raises(FacegenError, match="id_basis"):
        MorphableModel(mean, faces, id_basis=torch.ones(2, 5, 3))
