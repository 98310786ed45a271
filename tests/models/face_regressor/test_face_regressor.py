"""Face-parameter / landmark regressor: learns a fixed batch, files round-trip, bad files are named,
the ground-truth datamodule feeds it, and the training entry point writes regressor.pt."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from facegen.data.synthetic import (
    RenderSettings,
    SyntheticFacesDataModule,
    write_image_dataset,
)
from facegen.errors import CheckpointError, DatasetLayoutError
from facegen.models.face_regressor import (
    FaceRegressor,
    evaluate_face_regressor,
    load_face_regressor,
    load_synthetic_faces,
    regressor_loss,
    save_face_regressor,
    train_face_regressor,
)
from facegen.morphable import ProceduralFaceModel
from facegen.train import train

REPO = Path(__file__).resolve().parents[3]
FAST = {"batch_size": 16, "supersample": 1}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """16 synthetic faces at 32 px with their ground truth, in memory."""
    folder = tmp_path_factory.mktemp("faces")
    write_image_dataset(folder, n=16, resolution=32, seed=0, model=ProceduralFaceModel(seed=0),
                        settings=RenderSettings(**FAST))
    return load_synthetic_faces(folder)


def tiny(faces, **kwargs) -> FaceRegressor:
    targets = torch.cat([faces["params"], faces["landmarks"].flatten(1)], 1)
    return FaceRegressor(32, 3, faces["n_id"], faces["n_exp"], faces["n_alb"], targets.mean(0), targets.std(0),
                         width=8, **kwargs)


def test_loss_falls_on_fixed_batch(faces):
    torch.manual_seed(0)
    model = tiny(faces)
    x = faces["images"][:8].float() / 127.5 - 1
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        loss, terms = regressor_loss(model, x, faces["params"][:8], faces["landmarks"][:8])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert set(terms) == {"identity", "expression", "albedo", "sh_coeffs", "rotation", "translation", "landmarks"}
    assert losses[-1] < 0.2 * losses[0]
    # Fitted to the batch, its landmark predictions are far better than the mean face's.
    model.train()      # BatchNorm statistics of the batch itself
    pred = model.predict(x)
    assert model.training                                                 # predict restores the mode
    err = (pred["landmarks"] - faces["landmarks"][:8]).norm(dim=-1).mean()
    mean_err = (model.target_mean[-136:].view(68, 2) - faces["landmarks"][:8]).norm(dim=-1).mean()
    assert err < mean_err


def test_predict_shapes_and_resize(faces):
    model = tiny(faces).eval()
    x = faces["images"][:2].float() / 127.5 - 1
    pred = model.predict(x)
    sizes = {"id": faces["n_id"], "exp": faces["n_exp"], "albedo": faces["n_alb"], "sh_coeffs": 27,
             "rotation": 3, "translation": 3, "params": faces["params"].shape[1]}
    for key, size in sizes.items():
        assert pred[key].shape == (2, size), key
    assert pred["landmarks"].shape == (2, 68, 2)
    # A 64-px input (nearest 2x upsampling) is resized to 32 px: its landmarks are the 32-px ones scaled
    # by 2 in the pixel-centre convention.
    big = model.predict(x.repeat_interleave(2, -1).repeat_interleave(2, -2))
    torch.testing.assert_close(big["landmarks"], (pred["landmarks"] + 0.5) * 2 - 0.5, atol=0.2, rtol=0)
    grey = model.predict(x.mean(1, keepdim=True))                      # C=1 input to an RGB model
    assert grey["landmarks"].shape == (2, 68, 2)
    with pytest.raises(DatasetLayoutError, match="expected"):
        model.predict(torch.zeros(2, 4, 32, 32))
    bounded = tiny(faces, exp_bounds=(0.0, 1.0)).eval()
    with torch.no_grad():
        bounded.head[-1].bias.fill_(-5.0)                               # far below the rig's range
    exp = bounded.predict(x)["exp"]
    assert (exp == 0).all() and bounded.config()["exp_bounds"] == [0.0, 1.0]


def test_save_load_round_trip(faces, tmp_path):
    model = tiny(faces, exp_names=["a"] * faces["n_exp"]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "sub" / "regressor.pt"
    save_face_regressor(model, path, extra={"note": "test"})
    loaded = load_face_regressor(path)
    assert loaded.config() == model.config() and not loaded.training
    x = faces["images"][:3].float() / 127.5 - 1
    for key, value in model.predict(x).items():
        torch.testing.assert_close(loaded.predict(x)[key], value)
    assert not list(tmp_path.glob("sub/.*tmp"))                        # atomic: no temporary left


def test_bad_files_raise_checkpoint_error_naming_the_file(faces, tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_face_regressor(garbage)
    with pytest.raises(CheckpointError, match="missing.pt"):
        load_face_regressor(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="other.pt"):
        load_face_regressor(other)
    broken = tmp_path / "broken.pt"
    save_face_regressor(tiny(faces), broken)
    blob = torch.load(broken, weights_only=True)
    blob["config"]["width"] = 16                                       # weights no longer fit the config
    torch.save(blob, broken)
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_face_regressor(broken)


def test_train_function_learns_and_saves(faces, tmp_path):
    out = tmp_path / "regressor.pt"
    model = train_face_regressor(faces, val=faces, width=8, epochs=8, batch_size=8, lr=3e-3, augment=0.5, out=out)
    assert len(model.history) == 8 and model.history[-1]["train_loss"] < model.history[0]["train_loss"]
    metrics = evaluate_face_regressor(load_face_regressor(out), faces)
    assert metrics["n"] == 16 and np.isfinite(metrics["landmark_px"]) and metrics["landmark_px"] >= 0


def test_ground_truth_datamodule_keeps_cache_and_batches(tmp_path):
    kwargs = dict(cache_dir=tmp_path, n=6, resolution=32, seed=0, render=FAST, batch_size=3, val_fraction=0.34)
    plain = SyntheticFacesDataModule(**kwargs)
    truth = SyntheticFacesDataModule(**kwargs, ground_truth=True)
    assert plain.folder == truth.folder                                 # same cache key
    truth.setup("fit")
    batch = next(iter(truth.val_dataloader()))
    gt = np.load(truth.folder / "params.npz")
    rows = [list(gt["names"]).index(r.name) for r in truth.val_set.records[:2]]
    torch.testing.assert_close(batch["params"], torch.from_numpy(gt["params"][rows]))
    torch.testing.assert_close(batch["landmarks"], torch.from_numpy(gt["landmarks"][rows]))
    assert batch["image"].shape == (2, 3, 32, 32)
    plain.setup("fit")
    assert set(next(iter(plain.train_dataloader()))) == {"image", "c", "label"}   # image batches unchanged
    kw = truth.model_kwargs()
    assert kw["target_mean"].shape == (gt["params"].shape[1] + 136,) and kw["n_exp"] == int(gt["n_exp"])
    with pytest.raises(DatasetLayoutError, match="xflip"):
        SyntheticFacesDataModule(**kwargs, ground_truth=True, xflip=True)


def test_train_entry_point_writes_regressor(tmp_path):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "model=face_regressor", "logger=none", "run_name=test", "callbacks.progress_bar=null",
            "data.n=24", "data.resolution=16", "data.batch_size=8", "data.render={supersample:1}",
            "model.network.width=4", "trainer.max_epochs=2", f"paths.output_dir={tmp_path / 'run'}",
            f"paths.cache_dir={tmp_path / 'cache'}"])
    result = train(cfg)
    assert np.isfinite(result["metrics"]["val/landmark_px"])
    model = load_face_regressor(tmp_path / "run" / "regressor.pt")
    assert model.resolution == 16 and model.n_exp == 28
