"""FaceTuneGAN networks, losses and LightningModule on a small synthetic sphere 'face' (642 vertices)."""
from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import trimesh
from torch.utils.data import DataLoader

from facegen.errors import CheckpointError, FacegenError
from facegen.models.facetunegan import Discriminator, FaceTuneGAN, Generator, losses
from facegen.models.gan import r1_penalty

SMALL = dict(channels=[8, 16], style_channels=[8, 16], disc_channels=[8, 16], content_dim=4, style_dim=2,
             mapping_hidden=[16], down_factors=[4, 4], val_triplets=0)


def sphere_meshes(n_identities: int = 4, n_expressions: int = 3, seed: int = 0):
    """Identities = anisotropic scalings of a 50 mm sphere; expressions = identity-scaled smooth bulges (mm)."""
    sphere = trimesh.creation.icosphere(subdivisions=3)
    unit, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces, dtype=np.int64)
    rng = np.random.default_rng(seed)
    directions = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, -1, 0]], dtype=np.float64)
    meshes, identity, expression = [], [], []
    for c in range(n_identities):
        scale = 50.0 * (1.0 + 0.15 * rng.standard_normal(3))
        for s in range(n_expressions):
            bulge = np.zeros(len(unit)) if s == 0 else 8.0 * np.clip(unit @ directions[s - 1], 0, None) ** 2
            meshes.append(unit * scale * (1.0 + bulge[:, None] / 50.0))
            identity.append(c)
            expression.append(s)
    return (np.asarray(meshes, dtype=np.float32), faces, np.asarray(identity), np.asarray(expression))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    vertices, faces, identity, expression = sphere_meshes()
    mean, std = vertices.mean(0), np.maximum(vertices.std(0), 0.1)
    kwargs = dict(template_vertices=vertices[0], template_faces=faces, num_styles=3,
                  style_names=["neutral", "up", "front"], mean=mean, std=std, hierarchy_cache_dir=None)
    batch = {"vertices": torch.as_tensor((vertices[:8] - mean) / std), "identity": torch.as_tensor(identity[:8]),
             "expression": torch.as_tensor(expression[:8]), "index": torch.arange(8)}
    return kwargs, batch


def make_model(data, **overrides) -> FaceTuneGAN:
    torch.manual_seed(0)
    return FaceTuneGAN(**data[0], **{**SMALL, **overrides})


def fit(model: FaceTuneGAN, batch: dict, epochs: int, root) -> L.Trainer:
    loader = DataLoader([{k: v[i] for k, v in batch.items()} for i in range(8)], batch_size=8, shuffle=False)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=root)
    trainer.fit(model, train_dataloaders=loader)
    return trainer


def test_generator_and_discriminator_shapes(data):
    model = make_model(data)
    x = data[1]["vertices"]
    assert model.generator(x).shape == x.shape
    assert model.generator.encode_content(x).shape == (8, 4)
    assert model.generator.encode_style(x).shape == (8, 2)
    logits, features = model.discriminator(x)
    assert logits.shape == (8, 3) and features.shape[0] == 8
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
    torch.testing.assert_close(Discriminator.select(logits, labels), logits[torch.arange(8), labels])
    with pytest.raises(FacegenError, match="0..2"):
        Discriminator.select(logits, torch.full((8,), 3))


def test_mapping_starts_as_identity_adain(data):
    """The mapping's last bias gives gamma = 1, beta = 0 for every AdaIN channel (decoder order)."""
    gen = make_model(data).generator
    bias = gen.mapping.net[-1].bias
    assert bias.numel() == 2 * sum(gen.decoder.adain_channels) == gen.mapping.num_adain_params
    first = gen.decoder.adain_channels[0]
    assert torch.all(bias[:first] == 1) and torch.all(bias[first:2 * first] == 0)


def test_too_many_levels_raise(data):
    with pytest.raises(FacegenError, match="hierarchy levels"):
        make_model(data, channels=[8, 8, 8])


def test_losses_hand_values():
    p, t = torch.zeros(1, 2, 3), torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]])
    assert float(losses.vertex_distance_loss(p, t)) == pytest.approx(3.0)       # (5 + 1) / 2
    zero = torch.zeros(4)
    assert float(losses.discriminator_adversarial_loss(zero, zero)) == pytest.approx(2 * np.log(2))
    assert float(losses.generator_adversarial_loss(torch.full((4,), 50.0))) == pytest.approx(0.0, abs=1e-6)
    x = torch.randn(5, 7, 3, requires_grad=True)
    w = torch.randn(7, 3)
    r1 = r1_penalty(x, (x * w).sum((1, 2))).mean()                                 # grad = w for every sample
    assert float(r1) == pytest.approx(float(w.square().sum()), rel=1e-5)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)             # float16 recipe: scale, then unscale
    assert float(r1_penalty(x, (x * w).sum((1, 2)), scaler).mean()) == pytest.approx(float(r1), rel=1e-5)


def test_training_reduces_reconstruction_loss(data, tmp_path):
    model = make_model(data, lr=1e-3)
    x = data[1]["vertices"]
    with torch.no_grad():
        before = float(losses.vertex_distance_loss(model.generator(x), x))
    trainer = fit(model, data[1], epochs=15, root=tmp_path)
    with torch.no_grad():
        after = float(losses.vertex_distance_loss(model.generator(x), x))
    assert after < 0.6 * before, (before, after)
    metrics = trainer.callback_metrics
    for key in ("train/loss_rec", "train/loss_cycle", "train/loss_srec", "train/loss_adv", "train/loss_feat",
                "train/loss_lap", "train/loss_r1", "train/loss_d_adv", "train/rec_error_mm"):
        assert torch.isfinite(metrics[key]), key
    assert float(metrics["train/skipped_g_steps"]) == 0.0
    assert trainer.global_step == 30                                          # two optimiser steps per batch


def test_nan_loss_skips_step(data, tmp_path):
    model = make_model(data)
    batch = {**data[1], "vertices": data[1]["vertices"].clone()}
    batch["vertices"][0, 0, 0] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    trainer = fit(model, batch, epochs=1, root=tmp_path)
    assert float(trainer.callback_metrics["train/skipped_g_steps"]) == 1.0
    assert float(trainer.callback_metrics["train/skipped_d_steps"]) == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_checkpoint_round_trip(data, tmp_path):
    model = make_model(data)
    trainer = fit(model, data[1], epochs=1, root=tmp_path)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    restored = FaceTuneGAN.from_checkpoint(path, map_location="cpu")
    model.eval()
    x_mm = model.denormalise(data[1]["vertices"][:3])
    torch.testing.assert_close(restored.translate(x_mm, x_mm.flip(0)), model.translate(x_mm, x_mm.flip(0)))
    torch.testing.assert_close(restored.std, model.std)
    assert restored.hparams.style_names == ["neutral", "up", "front"]
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="missing keys"):
        FaceTuneGAN.from_checkpoint(tmp_path / "other.ckpt")


def test_mm_round_trip_and_bad_statistics(data):
    model = make_model(data)
    x = torch.randn(2, 642, 3)
    torch.testing.assert_close(model.normalise(model.denormalise(x)), x, atol=1e-4, rtol=1e-5)
    kwargs = {**data[0], "std": np.zeros_like(data[0]["std"])}
    with pytest.raises(FacegenError, match="std"):
        FaceTuneGAN(**kwargs, **SMALL)


def test_generator_usable_without_lightning(data):
    from facegen.geometry import build_mesh_hierarchy

    hierarchy = build_mesh_hierarchy(data[0]["template_vertices"], data[0]["template_faces"], factors=(4, 4))
    gen = Generator(hierarchy, channels=[8, 16], style_channels=[8], content_dim=3, style_dim=2, mapping_hidden=[8])
    assert gen(data[1]["vertices"]).shape == (8, 642, 3)
