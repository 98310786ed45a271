"""Synthetic datasets: NVlabs zip + ground truth, CLI, and the datamodules that read them."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.data.images import ImageDataModule
from facegen.data.synthetic import (
    RenderSettings,
    SyntheticFacesDataModule,
    SyntheticVideosDataModule,
    sample_faces,
    write_image_dataset,
)
from facegen.errors import DatasetLayoutError
from facegen.morphable import FACESCAPE_EXPRESSIONS, ProceduralFaceModel
from facegen.morphable.params import ParamRanges
from facegen.synth import main

FAST = {"batch_size": 8, "supersample": 2}


@pytest.fixture(scope="module")
def model():
    return ProceduralFaceModel(seed=0)


def test_image_dataset_is_nvlabs_zip_with_ground_truth(tmp_path, model):
    info = write_image_dataset(tmp_path, n=5, resolution=32, seed=3, model=model, settings=RenderSettings(**FAST))
    with zipfile.ZipFile(info["zip"]) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))
        labels = json.loads(archive.read("dataset.json"))["labels"]
        first = np.asarray(Image.open(archive.open(names[0])))
    assert names == [f"00000/img{i:08d}.png" for i in range(5)]
    gt = np.load(info["params"])
    assert [row[0] for row in labels] == names and [row[1] for row in labels] == gt["labels"].tolist()
    assert gt["params"].shape == (5, model.n_id + model.n_exp + model.n_alb + 33)
    assert gt["landmarks"].shape == (5, 68, 2) and first.shape == (32, 32, 3)
    # Inner landmarks (eyes, nose, mouth) land on the face, not on the black background.
    uv = np.clip(np.round(gt["landmarks"][0, 27:36]).astype(int), 0, 31)
    assert (first[uv[:, 1], uv[:, 0]].max(-1) > 0).all()
    # A preset's expression coefficients are the preset times the recorded strength.
    name = FACESCAPE_EXPRESSIONS[gt["labels"][0]]
    exp = gt["params"][0, model.n_id:model.n_id + model.n_exp]
    np.testing.assert_allclose(exp, model.expression_presets[name].numpy() * gt["strength"][0], atol=1e-6)
    assert Image.open(info["grid"]).size == (5 * 32, 32)


def test_sampling_is_seeded(model):
    a, la, _ = sample_faces(model, 4, seed=1, ranges=ParamRanges())
    b, lb, _ = sample_faces(model, 4, seed=1, ranges=ParamRanges())
    c, _, _ = sample_faces(model, 4, seed=2, ranges=ParamRanges())
    assert torch.equal(a, b) and np.array_equal(la, lb) and not torch.equal(a, c)
    with pytest.raises(DatasetLayoutError, match="presets"):
        sample_faces(model, 2, seed=0, ranges=ParamRanges(), expressions="random")


def test_faces_datamodule_generates_once_and_loads(tmp_path):
    kwargs = dict(cache_dir=tmp_path, n=6, resolution=32, seed=0, render=FAST, batch_size=3, use_labels=True)
    dm = SyntheticFacesDataModule(**kwargs)
    assert isinstance(dm, ImageDataModule)
    dm.prepare_data()
    dm.setup("fit")
    zip_path = dm.folder / "faces.zip"
    stamp = zip_path.stat().st_mtime_ns
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 32, 32) and batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert dm.model_kwargs()["img_resolution"] == 32 and dm.model_kwargs()["c_dim"] == dm.c_dim > 0
    again = SyntheticFacesDataModule(**kwargs)
    again.setup("fit")
    assert again.folder == dm.folder and zip_path.stat().st_mtime_ns == stamp
    assert SyntheticFacesDataModule(**{**kwargs, "seed": 1}).folder != dm.folder


def test_videos_datamodule_clips(tmp_path, model):
    dm = SyntheticVideosDataModule(tmp_path, n=2, resolution=32, frames=4, expressions=["mouth_stretch"],
                                   render=FAST, batch_size=2, val_fraction=0.0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (2, 4, 3, 32, 32) and batch["landmarks"].shape == (2, 4, 68, 2)
    torch.testing.assert_close(batch["intensity"][0], torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    assert batch["expression"] == ["mouth_stretch", "mouth_stretch"]
    # The jaw opens: the lower-lip/chin landmarks move down (image v grows) from neutral to full strength.
    chin = batch["landmarks"][:, :, 8, 1]
    assert torch.all(chin[:, -1] > chin[:, 0] + 0.5)
    exp = batch["params"][0, :, model.n_id:model.n_id + model.n_exp]
    torch.testing.assert_close(exp[-1], model.expression_presets["mouth_stretch"])
    assert (dm.folder / "clip_0000.mp4").stat().st_size > 0


def test_cli_images_and_bad_mode(tmp_path, capsys):
    summary = main(["images", "n=3", "resolution=32", f"out={tmp_path / 'faces'}", "render.supersample=1"])
    assert summary["zip"].exists() and summary["images_per_second"] > 0
    assert "images/s" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="usage"):
        main(["meshes"])
    with pytest.raises(SystemExit, match="unknown video expressions"):
        main(["videos", "n=1", "resolution=16", "frames=2", f"out={tmp_path / 'v'}", "video_expressions=[yawn]"])
