"""FaceTuneGAN networks, losses and LightningModule on a small synthetic sphere 'face' (642 vertices); the grouped
constructor's blocks; the legacy (flat) checkpoint through ``FaceTuneGAN.from_checkpoint`` and ``facegen.evaluate``."""
from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import trimesh
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader

from facegen.checkpoints import load
from facegen.config.blocks import block
from facegen.errors import CheckpointError, ConfigError, FacegenError
from facegen.evaluate import evaluate
from facegen.geometry import build_mesh_hierarchy
from facegen.models.facetunegan import (
    Discriminator,
    EvaluationConfig,
    FaceTuneGAN,
    Generator,
    HierarchyConfig,
    LossConfig,
    ScheduleConfig,
    losses,
)
from facegen.models.gan import r1_penalty

REPO = Path(__file__).resolve().parents[3]
LEGACY = REPO / "tests" / "data" / "legacy"
SMALL = {"generator": dict(channels=[8, 16], style_channels=[8, 16], content_dim=4, style_dim=2, mapping_hidden=[16]),
         "discriminator": dict(channels=[8, 16]), "hierarchy": dict(down_factors=[4, 4]),
         "evaluation": dict(val_triplets=0)}


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


def make_model(data, **blocks) -> FaceTuneGAN:
    """The SMALL model; ``blocks`` update its blocks key by key (``generator={"output_init": "zero"}``)."""
    torch.manual_seed(0)
    merged = {name: {**SMALL.get(name, {}), **blocks.get(name, {})} for name in {*SMALL, *blocks}}
    return FaceTuneGAN(**data[0], **merged)


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
    with pytest.raises(FacegenError, match=r"Discriminator x: expected shape \[B, 642, 3\], got \[8, 641, 3\]"):
        model.discriminator(x[:, 1:])
    with pytest.raises(FacegenError, match=r"ContentEncoder x: expected shape \[B, 642, 3\], got \[642, 3\]"):
        model.generator(x[0])
    with pytest.raises(FacegenError, match=r"Decoder content_code: expected shape \[B, 4\], got \[8, 5\]"):
        model.generator.decode(torch.zeros(8, 5), torch.zeros(8, 2))
    with pytest.raises(FacegenError, match=r"FaceTuneGAN.translate style_mm: expected shape \[8, 642, 3\]"):
        model.translate(x, x[:4])


def test_mapping_starts_as_identity_adain(data):
    """The mapping's last bias gives gamma = 1, beta = 0 for every AdaIN channel (decoder order)."""
    gen = make_model(data).generator
    bias = gen.mapping.net[-1].bias
    assert bias.numel() == 2 * sum(gen.decoder.adain_channels) == gen.mapping.num_adain_params
    first = gen.decoder.adain_channels[0]
    assert torch.all(bias[:first] == 1) and torch.all(bias[first:2 * first] == 0)


def test_too_many_levels_raise(data):
    with pytest.raises(FacegenError, match="hierarchy levels"):
        make_model(data, generator={"channels": [8, 8, 8]})


def test_blocks_are_checked_and_stored_as_plain_dicts(data):
    model = make_model(data, optimizer={"lr": 1e-3})
    hp = model.hparams
    assert hp.generator["_target_"] == "facegen.models.facetunegan.networks.Generator"   # completed
    assert hp.optimizer == {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3, "weight_decay": 5e-5,
                            "betas": [0.9, 0.999]}
    assert hp.loss["lambda_srec"] == 0.4 and hp.schedule == {"lr_decay_batches": 0, "lr_final_fraction": 0.05}
    assert hp.hierarchy == {"down_factors": [4, 4], "seq_length": 9, "dilation": 1}
    assert "template_vertices" not in hp and "mean" not in hp                       # in the checkpoint's data entry
    for blocks, message in [
        ({"loss": {"lambda_srce": 1.0}}, r"model.loss.lambda_srce: unknown key; did you mean 'lambda_srec'\?"),
        ({"loss": {"r1_gamma": "abc"}}, r"model.loss.r1_gamma: expected float, got 'abc'"),
        ({"loss": {"lambda_pair": -1.0}}, r"model.loss.lambda_pair: must be >= 0, got -1.0"),
        ({"evaluation": {"eval_triplets": 2.5}}, r"model.evaluation.eval_triplets: expected int"),
        ({"generator": {"chanels": [8, 16]}}, r"model.generator: .*chanels"),
        ({"generator": {"_target_": "os.system"}}, r"model.generator._target_='os.system'"),
        ({"optimizer": {"_target_": "builtins.eval"}}, r"model.optimizer._target_='builtins.eval'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            make_model(data, **blocks)


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
    model = make_model(data, optimizer={"lr": 1e-3})
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
    assert restored.hparams.style_names == ["neutral", "up", "front"] and not restored.training
    assert restored.hparams.generator == model.hparams.generator
    torch.save({"state_dict": {}, "hyper_parameters": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a FaceTuneGAN checkpoint, missing 'facetunegan_data'"):
        FaceTuneGAN.from_checkpoint(tmp_path / "other.ckpt")


def test_mm_round_trip_and_bad_statistics(data):
    model = make_model(data)
    x = torch.randn(2, 642, 3)
    torch.testing.assert_close(model.normalise(model.denormalise(x)), x, atol=1e-4, rtol=1e-5)
    kwargs = {**data[0], "std": np.zeros_like(data[0]["std"])}
    with pytest.raises(FacegenError, match="std"):
        FaceTuneGAN(**kwargs, **SMALL)
    kwargs = {**data[0], "mean": data[0]["mean"][:-1]}
    with pytest.raises(FacegenError, match=r"FaceTuneGAN mean: expected shape \[642, 3\], got \[641, 3\]"):
        FaceTuneGAN(**kwargs, **SMALL)


def test_generator_usable_without_lightning(data):
    hierarchy = build_mesh_hierarchy(data[0]["template_vertices"], data[0]["template_faces"], factors=(4, 4))
    gen = Generator(hierarchy, channels=[8, 16], style_channels=[8], content_dim=3, style_dim=2, mapping_hidden=[8])
    assert gen(data[1]["vertices"]).shape == (8, 642, 3)


def test_legacy_checkpoint_reproduces_the_old_output():
    """A checkpoint of the code before the grouped constructor (flat hyper-parameters, d915e12) loads through the
    legacy table and gives the output recorded under that code (tests/data/legacy/expected_outputs.py)."""
    expected = json.loads((LEGACY / "expected_outputs.json").read_text())["facetunegan"]
    model = FaceTuneGAN.from_checkpoint(LEGACY / "facetunegan.ckpt", hierarchy_cache_dir=None)
    assert model.hparams.generator["channels"] == [4, 4, 4, 4] and model.hparams.evaluation["eval_triplets"] == 4
    assert model.hparams.discriminator == {"_target_": "facegen.models.facetunegan.networks.Discriminator",
                                           "channels": [4, 4, 4, 4]}
    with torch.no_grad():
        output = float(model.eval().reconstruct(model.template_vertices[None] + 0.5).double().sum())
    assert output == pytest.approx(expected, rel=1e-6)


def legacy_copy(tmp_path: Path) -> Path:
    """The legacy checkpoint with its two absolute cache folders moved into ``tmp_path`` (as on another machine)."""
    checkpoint = load(LEGACY / "facetunegan.ckpt")
    checkpoint["hyper_parameters"]["hierarchy_cache_dir"] = str(tmp_path / "cache" / "meshes" / "hierarchy")
    checkpoint["facegen_config"]["data"]["cache_dir"] = str(tmp_path / "cache" / "meshes")
    path = tmp_path / "legacy.ckpt"
    torch.save(checkpoint, path)
    return path


def evaluate_config(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="evaluate", overrides=[
            "logger=none", f"paths.output_dir={tmp_path / 'eval'}", f"paths.cache_dir={tmp_path / 'cache'}",
            *overrides])


def test_legacy_checkpoint_evaluates_through_the_entry_point(tmp_path):
    """``python -m facegen.evaluate ckpt_path=<legacy copy>`` (in process): the data from the checkpoint's config,
    all four tables written; then on a test split of one identity, the tables that need two are named as not
    computed, with the reason, in the metrics folder."""
    ckpt = legacy_copy(tmp_path)
    tables = evaluate(evaluate_config(tmp_path, f"ckpt_path={ckpt}"))
    metrics = tmp_path / "eval" / "metrics"
    assert {p.stem for p in metrics.glob("*.md")} == {"test_reconstruction", "test_identity_decomposition",
                                                      "test_neutralisation", "test_expression_transfer"}
    assert tables["expression_transfer"][-1]["expression"] == "all" and tables["reconstruction"][0]["mean_mm"] > 0
    shutil.rmtree(tmp_path / "eval")

    tables = evaluate(evaluate_config(tmp_path, f"ckpt_path={ckpt}", "data=synthetic_meshes", "data.n_identities=6",
                                      "data.test_fraction=0.17", "data.samples_per_expression=1"))
    assert "status" not in tables["reconstruction"][0]
    for name in ("identity_decomposition", "neutralisation", "expression_transfer"):
        assert tables[name][0]["status"] == "not computed" and "1 identities" in tables[name][0]["reason"]
        text = (metrics / f"test_{name}.md").read_text()
        assert "not computed" in text and "the test split has 1 identities" in text


@pytest.mark.parametrize("experiment", [None, "facetunegan_cpu30", "facetunegan_coma", "facetunegan_facescape"])
def test_model_configs_hold_valid_blocks(experiment):
    """conf/model/facetunegan.yaml and the experiments: every block parses, the network blocks bind to the networks'
    keyword arguments (the module adds the hierarchy and num_styles), the optimiser is Adam."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["model=facetunegan", "seed=3",
                                                      *([f"experiment={experiment}"] if experiment else [])])
    model = dict(cfg.model)
    assert model.pop("_target_") == "facegen.models.facetunegan.FaceTuneGAN" and model.pop("_recursive_") is False
    for name, cls in (("hierarchy", HierarchyConfig), ("loss", LossConfig), ("schedule", ScheduleConfig),
                      ("evaluation", EvaluationConfig)):
        block(cls, model.pop(name), f"model.{name}")
    for name, network, data in (("generator", Generator, {}), ("discriminator", Discriminator, {"num_styles": 2})):
        spec = dict(model.pop(name))
        assert spec.pop("_target_") == f"facegen.models.facetunegan.networks.{network.__name__}"
        inspect.signature(network).bind(None, **spec, **data)
    optimizer = dict(model.pop("optimizer"))
    assert optimizer["_target_"] == "torch.optim.Adam" and optimizer["_partial_"] is True
    assert cfg.model.evaluation.seed == 3 and not model                             # nothing else, nothing flat
