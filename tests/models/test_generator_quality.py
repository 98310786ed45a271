"""Generator quality in face-regressor features: floors between real sets, a generator's scores, the callback."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from facegen.data.synthetic import write_image_dataset
from facegen.models.face_regressor import FaceRegressor, save_face_regressor
from facegen.models.quality import GeneratorQuality, GeneratorQualityCallback
from facegen.models.stylegan2 import Generator, StyleGAN2

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    for name, seed in (("a", 1), ("b", 2)):
        write_image_dataset(root / name, n=24, resolution=16, seed=seed, settings=None)
    torch.manual_seed(0)
    regressor = FaceRegressor(resolution=16, width=4)
    save_face_regressor(regressor, root / "regressor.pt")
    return root


def test_floor_and_generator_scores(world):
    quality = GeneratorQuality(world / "regressor.pt", world / "a", world / "b", num_samples=24)
    floor = quality.floor()
    assert {"fd_regressor", "precision", "recall", "w1_rotation_deg", "w1_expression"} <= set(floor)
    assert 0 <= floor["precision"] <= 1 and 0 <= floor["recall"] <= 1 and floor["fd_regressor"] >= 0
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, mapping_layers=1, channel_base=64, channel_max=8)
    scores = quality(G)
    assert set(scores) == set(floor)
    # random-init noise images are far from rendered faces in the regressor's own parameters
    assert scores["w1_rotation_deg"] != pytest.approx(floor["w1_rotation_deg"])


def test_callback_logs_and_writes_a_table(world, tmp_path):
    module = StyleGAN2(img_resolution=16, generator={"z_dim": 8, "w_dim": 8, "mapping_layers": 1, "channel_base": 64,
                                                     "channel_max": 8}, augment=None, grid={"every_kimg": 0})
    callback = GeneratorQualityCallback(str(world / "regressor.pt"), str(world / "a"), str(world / "b"),
                                        every_kimg=0.008, num_samples=24)
    images = torch.utils.data.TensorDataset(torch.rand(16, 3, 16, 16) * 2 - 1)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[callback])
    trainer.fit(module, torch.utils.data.DataLoader(images, batch_size=4))
    table = (tmp_path / "metrics" / "quality.md").read_text()
    kimgs = [row["kimg"] for row in callback.rows]
    assert kimgs[0] == "floor" and kimgs[1:] == [0.0, 0.008, 0.016]  # start, then every 8 images
    assert "floor_fd_regressor" in table and "precision" in table


def test_callback_without_its_files_warns_once_and_stays_out_of_the_way(tmp_path, caplog):
    callback = GeneratorQualityCallback(str(tmp_path / "regressor.pt"), str(tmp_path / "real"))

    class Trainer:
        is_global_zero, loggers, default_root_dir = True, [], str(tmp_path)

    callback._evaluate(Trainer(), None)
    callback._evaluate(Trainer(), None)
    assert callback.disabled and callback.rows == []
    assert [r.message for r in caplog.records].count(next(r.message for r in caplog.records)) == 1
    assert "regressor.pt" in caplog.records[0].message and "not measured" in caplog.records[0].message
