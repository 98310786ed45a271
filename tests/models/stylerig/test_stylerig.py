"""StyleRig: DFR network, RigNet masks, losses (zero where they must be, hand values), gradients, checkpoints."""
from __future__ import annotations

import logging
import math

import pytest
import torch

from facegen.checkpoints import load_any
from facegen.errors import (
    FacegenError,
    MissingWeightsError,
    RenderInputError,
    StyleGANInputError,
)
from facegen.models.stylegan2 import Generator
from facegen.models.stylegan2.formats import save_rosinality
from facegen.models.stylerig import DFR, DFRNetwork, RigNet, StyleRig, parse_layers
from facegen.models.stylerig.evaluation import part_errors
from facegen.models.stylerig.frozen import build_renderer
from facegen.models.stylerig.latents import LatentDataModule
from facegen.models.stylerig.losses import (
    consistency_loss,
    edit_loss,
    landmark_loss,
    photometric_loss,
    reconstruction_loss,
    render_loss,
    statistical_regulariser,
)
from facegen.models.stylerig.rignet import control_mask, swap_block
from facegen.morphable import ProceduralFaceModel
from facegen.morphable.params import ParamLayout, sample_params

torch.set_num_threads(1)
TINY_G = {"z_dim": 16, "w_dim": 16, "img_resolution": 32, "mapping_layers": 2, "channel_base": 256, "channel_max": 16}


@pytest.fixture(scope="module")
def face_model():
    return ProceduralFaceModel(seed=0)


@pytest.fixture(scope="module")
def renderer(face_model):
    return build_renderer(face_model, 32, None)


@pytest.fixture(scope="module")
def latents(tmp_path_factory):
    """A datamodule over a tiny random generator written as a rosinality file, and its model kwargs."""
    cache = tmp_path_factory.mktemp("cache")
    dm = LatentDataModule(cache_dir=cache, n_train=8, n_val=4, n_test=8, batch_size=4, truth={"n": 2},
                          random_generator=TINY_G)
    dm.prepare_data()
    dm.setup("fit")
    return dm, dm.model_kwargs()


def _params(layout: ParamLayout, n: int, seed: int) -> torch.Tensor:
    return sample_params(layout, n, torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------- networks
def test_parse_layers_specs_and_errors():
    assert parse_layers("0-3", 10) == [0, 1, 2, 3]
    assert parse_layers("4-", 10) == [4, 5, 6, 7, 8, 9]
    assert parse_layers("all", 3) == [0, 1, 2]
    assert parse_layers([5, 1, 1], 10) == [1, 5]
    assert parse_layers("0-1,7", 8) == [0, 1, 7]
    for bad in ("0-12", "x-3", [], "9"):
        with pytest.raises(StyleGANInputError):
            parse_layers(bad, 8)


def test_dfr_network_starts_at_the_mean_face_and_checks_shapes():
    net = DFRNetwork(num_ws=4, w_dim=8, n_id=3, n_exp=2, n_alb=1, hidden=[16, 16])
    assert sum(isinstance(m, torch.nn.ELU) for m in net.net) == 2       # ELU after every hidden layer
    p = net(torch.randn(5, 4, 8))
    assert p.shape == (5, ParamLayout(3, 2, 1).dim) and torch.all(p == 0)
    with pytest.raises(StyleGANInputError, match=r"DFR w_plus: expected shape \[B, 4, 8\], got \[5, 32\]"):
        net(torch.randn(5, 32))
    bounded = DFRNetwork(num_ws=4, w_dim=8, n_id=3, n_exp=2, n_alb=1, hidden=[16], expression_bounds=(0, 1))
    torch.nn.init.normal_(bounded.net[-1].weight, std=10.0)
    p = bounded(torch.randn(64, 4, 8))
    layout = ParamLayout(3, 2, 1)
    assert p[:, layout.expression].min() >= 0 and p[:, layout.expression].max() <= 1
    assert p[:, layout.rotation].abs().max() > 1                         # other parts stay unbounded


def test_rignet_identity_edit_and_layer_masks():
    layout = ParamLayout(3, 4, 2)
    w = torch.randn(6, 10, 16)
    p = torch.randn(6, layout.dim)
    rig = RigNet(10, 16, layout, "pose", layers="0-3", latent_dim=8)
    assert torch.equal(rig(w, p), w)                                     # untrained RigNet = identity edit
    assert reconstruction_loss(rig(w, p), w).abs().max() == 0
    torch.nn.init.normal_(rig.decoder[2].weight, std=0.1)
    delta = rig.delta(w, p)
    assert delta[:, 4:].abs().max() == 0 and delta[:, :4].abs().min() > 0
    # only the controlled block (rotation) of p is read: changing anything else changes nothing
    q = p.clone()
    q[:, layout.identity] += 5.0
    q[:, layout.sh_coeffs] -= 1.0
    assert torch.equal(rig(w, q), rig(w, p))
    q[:, layout.rotation] += 0.3
    assert not torch.equal(rig(w, q), rig(w, p))
    light = RigNet(10, 16, layout, "illumination", latent_dim=8)          # default mask: middle to fine
    assert light.layers == list(range(4, 10))
    with pytest.raises(StyleGANInputError):
        RigNet(10, 16, layout, "hairstyle")
    with pytest.raises(StyleGANInputError, match=r"RigNet p: expected shape \[6, 42\], got \[6, 41\]"):
        rig(w, p[:, 1:])


# --------------------------------------------------------------------------------------------- losses
def test_photometric_and_landmark_losses_equal_hand_values():
    image = torch.zeros(1, 3, 2, 2)
    rendered = torch.zeros(1, 3, 2, 2)
    rendered[0, :, 0, 0] = torch.tensor([1.0, 2.0, 2.0])                # squared error 9 at pixel (0, 0)
    rendered[0, :, 1, 1] = 5.0                                           # outside the mask: ignored
    mask = torch.zeros(1, 1, 2, 2)
    mask[0, 0, 0, :] = 1.0
    assert photometric_loss(image, rendered, mask).item() == pytest.approx(9.0 / 2)
    with pytest.raises(RenderInputError,
                       match=r"photometric loss: mask: expected shape \[1, 1, 2, 2\], got \[1, 2, 2\]"):
        photometric_loss(image, rendered, mask[:, 0])
    target = torch.zeros(1, 68, 2)
    predicted = torch.zeros(1, 68, 2)
    predicted[0, 0] = torch.tensor([3.0, 4.0])                           # 25 px^2 on one of 68 points
    assert landmark_loss(target, predicted, 10).item() == pytest.approx(25.0 / 68 / 100)
    layout = ParamLayout(2, 1, 1)
    p = torch.zeros(1, layout.dim)
    assert statistical_regulariser(p, layout).item() == 0
    p[0, layout.identity] = torch.tensor([1.0, 2.0])
    p[0, layout.albedo] = 3.0
    p[0, layout.rotation] = 1.0                                          # pose is not regularised
    assert statistical_regulariser(p, layout, w_id=1.0, w_alb=0.5).item() == pytest.approx(5.0 + 4.5)


def test_render_edit_and_consistency_losses_vanish_for_a_perfect_edit(face_model, renderer):
    layout = ParamLayout.from_model(face_model)
    p_w, p_v = _params(layout, 2, 0), _params(layout, 2, 1)
    with torch.no_grad():
        r_w, r_v = renderer(p_w), renderer(p_v)
    own = render_loss(renderer, r_w.image, p_w, r_w.landmarks)
    assert own.total.abs().max() < 1e-10
    for control in ("pose", "expression", "illumination", "all"):
        mask = control_mask(layout, control)
        perfect = swap_block(p_w, p_v, mask)          # p_hat: the controlled block of v, the rest of w
        edit = edit_loss(renderer, r_v.image, p_v, perfect, mask, r_v.landmarks)
        consist = consistency_loss(renderer, r_w.image, p_w, perfect, mask, r_w.landmarks)
        assert edit.total.abs().max() < 1e-10 and consist.total.abs().max() < 1e-10, control
        # no edit at all (p_hat = p_w): the edit loss sees the missing change
        assert edit_loss(renderer, r_v.image, p_v, p_w, mask, r_v.landmarks).total.min() > 1e-4, control


def test_part_errors_units():
    layout = ParamLayout(1, 1, 1)
    a, b = torch.zeros(1, layout.dim), torch.zeros(1, layout.dim)
    b[0, layout.rotation] = torch.tensor([math.pi / 180, 0.0, 0.0])
    b[0, layout.translation] = torch.tensor([3.0, 0.0, 0.0])
    errors = part_errors(a, b, layout)
    assert errors["rotation"].item() == pytest.approx(1 / 3) and errors["translation"].item() == pytest.approx(1.0)


# -------------------------------------------------------------------------------- modules and gradients
def test_rosinality_checkpoint_plugs_in(tmp_path):
    torch.manual_seed(3)
    G = Generator(**TINY_G).eval()
    path = tmp_path / "user_ffhq.pt"
    save_rosinality(G, path)
    blob = load_any(path)
    assert "g_ema" in blob and "style.1.weight" in blob["g_ema"] and "latent_avg" in blob   # rosinality layout
    dm = LatentDataModule(generator_path=str(path), cache_dir=tmp_path, n_train=4, n_val=0, n_test=2, batch_size=2,
                          truth={"n": 0})
    dm.setup("fit")
    kwargs = dm.model_kwargs()
    assert kwargs["num_ws"] == G.num_ws and kwargs["w_dim"] == 16 and kwargs["img_resolution"] == 32
    module = DFR(**kwargs, network={"hidden": [8]})
    w = dm.dataset("train").w_plus
    with torch.no_grad():
        assert torch.allclose(module.synthesize(w), G.synthesis(w, noise_mode="const").clamp(-1, 1), atol=1e-5)
    assert torch.allclose(module.dfr.w_avg, G.mapping.w_avg)


def test_missing_files_raise_clear_errors(tmp_path, latents):
    with pytest.raises(MissingWeightsError, match="generator_path"):
        LatentDataModule(generator_path=str(tmp_path / "absent.pt"), cache_dir=tmp_path).prepare_data()
    _, kwargs = latents
    with pytest.raises(MissingWeightsError, match="landmark_model_path"):
        DFR(**kwargs, network={"hidden": [8]}, landmark_model_path=str(tmp_path / "absent_regressor.pt"))
    with pytest.raises(MissingWeightsError, match="dfr_path"):
        StyleRig(**kwargs, dfr_path=str(tmp_path / "absent_dfr.ckpt"))
    assert issubclass(MissingWeightsError, FacegenError)


def test_dfr_without_landmark_model_says_so_and_loss_falls(latents, caplog):
    dm, kwargs = latents
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="facegen.models.stylerig.frozen"):
        module = DFR(**kwargs, network={"hidden": [32]}, optimizer={"lr": 3e-3})
    assert sum("no landmark loss" in r.getMessage() for r in caplog.records) == 1
    batch = next(iter(dm.train_dataloader()))
    optimiser = module.configure_optimizers()
    losses = []
    for _ in range(12):
        out = module.losses(batch["w_plus"], batch["image"])
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
        losses.append(out["loss"].item())
    assert out["land"].item() == 0
    assert losses[-1] < 0.8 * losses[0]
    assert all(p.grad is None for p in module.G.parameters())


def test_stylerig_gradients_reach_rignet_only(latents):
    dm, kwargs = latents
    torch.manual_seed(0)
    module = StyleRig(**kwargs, network={"controls": ["pose", "expression"]}, loss={"lambda_land": 1.0})
    torch.nn.init.normal_(module.dfr.net[-1].weight, std=0.05)       # an F that depends on w
    batch = next(iter(dm.train_dataloader()))
    optimiser = module.configure_optimizers()
    out = module.losses(batch["w_plus"], batch["image"], "pose")
    assert out["rec"].item() == 0                                    # untrained RigNet reproduces w
    optimiser.zero_grad()
    out["loss"].backward()
    rig = module.rignets["pose"]
    assert rig.decoder[2].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.G.parameters())
    assert all(p.grad is None for p in module.dfr.parameters())
    assert all(p.grad is None for p in module.rignets["expression"].parameters())
    optimiser.step()
    optimiser.zero_grad()
    module.losses(batch["w_plus"], batch["image"], "pose")["loss"].backward()
    assert rig.encoder.weight.grad.abs().sum() > 0                   # after one step the whole RigNet learns
    w_hat = module.edit(batch["w_plus"], module.dfr(batch["w_plus"]).roll(1, 0), "pose")
    assert torch.equal(w_hat[:, 4:], batch["w_plus"][:, 4:])         # pose edits layers 0-3 only
    assert module.G.training is False and module.dfr.training is False
    module.train()
    assert module.G.training is False and module.dfr.training is False and rig.training


def _pose_error_after_training(module: StyleRig, batch, steps: int) -> tuple[float, float]:
    """Mean |rotation(F(w_hat)) - rotation(F(v))| before and after ``steps`` Adam steps of the pose RigNet, trained
    on renderings of F(w) (so that L_edit is smallest where F(w_hat)'s rotation equals F(v)'s)."""
    w = batch["w_plus"]
    rotation = module.layout.slices["rotation"]
    v_index = torch.roll(torch.arange(w.shape[0]), 1)

    def error() -> float:
        with torch.no_grad():
            p_w = module.dfr(w)
            p_hat = module.dfr(module.edit(w, p_w[v_index], "pose"))
            return (p_hat[:, rotation] - p_w[v_index][:, rotation]).abs().mean().item()

    with torch.no_grad():                                             # images that F explains exactly
        images = module.renderer(module.dfr(w)).image * 2 - 1
    before = error()
    optimiser = module.configure_optimizers()
    for _ in range(steps):
        optimiser.zero_grad()
        module.losses(w, images, "pose", v_index=v_index)["loss"].backward()
        optimiser.step()
    return before, error()


def test_rignet_moves_the_controlled_block_towards_the_target_with_the_default_weights(latents):
    """The default loss balance (w_edit = w_consist = 300, lr 1e-3) makes the pose RigNet move F(w_hat)'s rotation
    towards F(v)'s on a fixed batch; the paper's literal 1:1:1 with our per-pixel L_photo hardly moves it."""
    dm, kwargs = latents
    batch = next(iter(dm.train_dataloader()))
    errors = {}
    for name, weights in {"default": {}, "1:1:1": {"w_edit": 1.0, "w_consist": 1.0}}.items():
        torch.manual_seed(0)
        module = StyleRig(**kwargs, network={"controls": ["pose"]}, loss={"lambda_land": 1.0, **weights})
        torch.manual_seed(1)
        torch.nn.init.normal_(module.dfr.net[-1].weight, std=0.05)   # an F that depends on w
        errors[name] = _pose_error_after_training(module, batch, steps=40)
    before, after = errors["default"]
    assert errors["1:1:1"][0] == pytest.approx(before)               # same F, same pairs
    assert after < 0.9 * before                                       # measured: 0.076 -> 0.064 rad
    assert before - after > 5 * (before - errors["1:1:1"][1])        # 1:1:1: 0.076 -> 0.075


def test_landmark_model_file_drives_the_landmark_loss(tmp_path, latents):
    regressor_module = pytest.importorskip("facegen.models.face_regressor")
    dm, kwargs = latents
    torch.manual_seed(0)
    regressor = regressor_module.FaceRegressor(resolution=32, width=4)
    path = tmp_path / "regressor.pt"
    regressor_module.save_face_regressor(regressor, path)
    module = DFR(**kwargs, network={"hidden": [8]}, landmark_model_path=str(path))
    batch = next(iter(dm.train_dataloader()))
    landmarks = module.detect_landmarks(batch["image"])
    assert landmarks.shape == (4, 68, 2)
    out = module.losses(batch["w_plus"], batch["image"], landmarks)
    assert out["land"].item() > 0
    assert not any(k.startswith("landmark_model") for k in module.state_dict())


@pytest.mark.realdata
def test_dfr_with_the_ict_model(shared_data, latents):
    from facegen.config import default_cache_dir

    dm, kwargs = latents
    morphable = {"name": "ict", "root": str(shared_data / "ict_facekit"), "n_id": 4,
                 "cache_dir": str(default_cache_dir())}         # the parsed meshes are reused across runs
    module = DFR(**kwargs, network={"hidden": [8]}, morphable=morphable)
    assert module.layout.n_exp == module.face_model.n_exp and module.layout.n_id == 4
    batch = next(iter(dm.train_dataloader()))
    out = module.losses(batch["w_plus"], batch["image"])
    assert out["params"].shape == (4, module.layout.dim) and torch.isfinite(out["loss"])


def test_facegen_lightning_checkpoint_with_hydra_lists_loads(tmp_path):
    from omegaconf import OmegaConf

    from facegen.models.stylegan2.formats import load_generator

    torch.manual_seed(4)
    G = Generator(**TINY_G).eval()
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"G_ema.{k}": v for k, v in G.state_dict().items()},
                "hyper_parameters": {"betas": OmegaConf.create([0.0, 0.99]), "conv_clamp": None}}, path)
    loaded, w_avg = load_generator(path)
    w = torch.randn(2, G.num_ws, G.w_dim)
    with torch.no_grad():
        assert torch.allclose(loaded.synthesis(w), G.synthesis(w), atol=1e-5)
    assert torch.equal(w_avg, G.mapping.w_avg)


def test_stylerig_metrics_of_the_identity_edit(latents):
    """An untrained RigNet (delta w = 0) edits nothing: after = without edit, nothing changes, identity kept."""
    from facegen.models.stylerig.evaluation import evaluate_stylerig

    dm, kwargs = latents
    torch.manual_seed(0)
    module = StyleRig(**kwargs, evaluation={"pairs": 8, "grid_size": 2, "sweep_latents": 1, "sweep_steps": 2}).eval()
    torch.nn.init.normal_(module.dfr.net[-1].weight, std=0.05)
    tables = evaluate_stylerig(module, dm, "test")
    p = module.dfr(dm.dataset("test").w_plus)
    expected = part_errors(p, p.roll(1, 0), module.layout)["rotation"].mean().item()
    pose = next(r for r in tables["edit_accuracy"] if r["control"] == "pose")
    assert pose["error_after_edit"] == pytest.approx(expected) and pose["error_without_edit"] == pytest.approx(expected)
    assert all(r["change_by_edit"] == 0 for r in tables["preservation"])
    assert all(r["identity_mm"] == 0 and r["rec_w"] == 0 and r["reference_other_face_mm"] > 0
               for r in tables["identity"])
    for r in tables["identity"]:   # dlib on the same image twice: distance 0 where it finds a face, else NaN + count
        found = r["n"] - r["dlib_no_face"]
        assert 0 <= found <= r["n"] and "dlib_reference_other_face" in r
        assert (math.isnan(r["dlib_identity_distance"]) if found == 0 else r["dlib_identity_distance"] < 1e-6)
