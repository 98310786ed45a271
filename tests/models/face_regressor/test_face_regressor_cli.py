"""The face regressor's one training path: the LightningModule's grouped blocks, and the command line
``python -m facegen.models.face_regressor`` training through it with a Lightning Trainer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from facegen.checkpoints import load
from facegen.data.synthetic import RenderSettings, write_image_dataset
from facegen.errors import ConfigError
from facegen.models.face_regressor import (
    FaceRegressorModule,
    LossWeights,
    OneCycle,
    load_face_regressor,
    train_face_regressor,
)
from facegen.models.face_regressor.cli import main
from facegen.models.face_regressor.module import DEFAULT_OPTIMIZER
from facegen.morphable import ProceduralFaceModel

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two folders of 16 synthetic faces at 16 px (train, held out)."""
    root = tmp_path_factory.mktemp("faces")
    for name, seed in (("train", 0), ("val", 1)):
        write_image_dataset(root / name, n=16, resolution=16, seed=seed, model=ProceduralFaceModel(seed=0),
                            settings=RenderSettings(batch_size=16, supersample=1))
    return root / "train", root / "val"


def test_the_config_holds_the_block_defaults():
    model = yaml.safe_load((REPO / "conf" / "model" / "face_regressor.yaml").read_text())["model"]
    assert model["_recursive_"] is False and model["network"]["width"] == 24      # the config's own width
    assert LossWeights(**model["loss"]) == LossWeights() and OneCycle(**model["scheduler"]) == OneCycle()
    assert model["optimizer"] == DEFAULT_OPTIMIZER and model["augmentation"] == {"strength": 1.0}


def test_blocks_are_checked_and_the_optimiser_is_built_from_its_spec():
    kwargs = {"img_resolution": 16, "img_channels": 3}
    with pytest.raises(ConfigError, match=r"model\.loss\.expresion: unknown key; did you mean 'expression'"):
        FaceRegressorModule(**kwargs, loss={"expresion": 4.0})
    with pytest.raises(ConfigError, match=r"model\.scheduler\.pct_start"):
        FaceRegressorModule(**kwargs, scheduler={"pct_start": "soon"})
    with pytest.raises(ConfigError, match=r"model\.augmentation\.strength: must be >= 0"):
        FaceRegressorModule(**kwargs, augmentation={"strength": -1})
    module = FaceRegressorModule(**kwargs, network={"width": 4}, loss={"expression": 4.0}, optimizer={"lr": 0.01})
    assert module.regressor.width == 4 and module.regressor.exp_bounds == (0.0, 1.0)
    assert module.loss.expression == 4.0 and module.loss.landmarks == 2.0
    assert module.hparams["optimizer"] == {**DEFAULT_OPTIMIZER, "lr": 0.01}
    assert "target_mean" not in module.hparams                                  # data, kept in the checkpoint


def test_command_line_trains_through_lightning_and_writes_the_file(folders, tmp_path, capsys):
    train, val = folders
    out = tmp_path / "regressor.pt"
    model = main(["--data", str(train), "--val", str(val), "--out", str(out), "--width", "4", "--epochs", "3",
                  "--batch-size", "8", "--weights", '{"expression": 4}', "--accelerator", "cpu"])
    assert [row["epoch"] for row in model.history] == [1, 2, 3]
    assert all("val_landmark_px" in row and row["train_loss"] > 0 for row in model.history)
    blob = load(out)
    assert blob["extra"]["data"] == [str(train)] and set(blob["extra"]["validation"]) == {str(val)}
    assert blob["extra"]["validation"][str(val)]["n"] == 16
    loaded = load_face_regressor(out)
    assert loaded.resolution == 16 and loaded.width == 4
    images = torch.zeros(1, 3, 16, 16)
    torch.testing.assert_close(loaded.predict(images)["params"], model.predict(images)["params"])
    printed = capsys.readouterr().out
    assert json.loads(printed.splitlines()[0])["epoch"] == 1                      # one JSON row per epoch


def test_python_dash_m_runs_the_command_line(folders, tmp_path):
    train, _ = folders
    out = tmp_path / "cli.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    result = subprocess.run([sys.executable, "-m", "facegen.models.face_regressor", "--data", str(train), "--out",
                             str(out), "--width", "4", "--epochs", "1", "--batch-size", "8", "--accelerator", "cpu"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert load_face_regressor(out).n_exp == 28


def test_max_minutes_stops_after_the_epoch_that_passes_it(folders):
    train, _ = folders
    model = train_face_regressor(train, width=4, epochs=5, batch_size=8, max_minutes=1e-6, log_every=0,
                                 accelerator="cpu")
    assert len(model.history) == 1 and not model.training
