"""Shared infrastructure: atomic writes, tables, picture logging, logger factory, config composition."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch import Trainer

from facegen.config.loggers import wandb_logger
from facegen.reporting import log_images, log_table, markdown_table
from facegen.utils import atomic_torch_save, atomic_write

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_atomic_write_keeps_old_file_when_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "a" / "file.txt"
    atomic_write(path, "first")
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, "second")
    assert path.read_text() == "first"
    assert [p.name for p in path.parent.iterdir()] == ["file.txt"]  # no temporary left behind


def test_atomic_torch_save_round_trip(tmp_path):
    atomic_torch_save({"x": torch.arange(3)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt")["x"], torch.arange(3))


def test_markdown_table_formats_floats_and_missing_cells():
    text = markdown_table([{"a": 1.23456, "b": "x"}, {"a": 2}])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1.235 | x |", "| 2 |  |"]


def test_log_images_and_tables_write_files_without_logger(tmp_path):
    trainer = Trainer(logger=False, default_root_dir=str(tmp_path), enable_progress_bar=False)
    images = [np.full((4, 5, 3), 200, np.uint8), np.zeros((4, 5, 3), np.uint8)]
    paths = log_images(trainer, "val/recon", images, step=7)
    assert [p.name for p in paths] == ["00000007_0.png", "00000007_1.png"]
    from PIL import Image

    assert np.asarray(Image.open(paths[0])).tolist() == images[0].tolist()
    log_table(trainer, "test/transfer", [{"expression": "smile", "error_mm": 1.5}])
    assert (tmp_path / "metrics" / "test_transfer.csv").read_text().splitlines() == ["expression,error_mm", "smile,1.5"]
    assert "| smile | 1.500 |" in (tmp_path / "metrics" / "test_transfer.md").read_text()


def test_wandb_logger_goes_offline_without_key(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    logger = wandb_logger(project="facegen", name="t", save_dir=str(tmp_path))
    assert logger._wandb_init["mode"] == "offline"


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "bf16", "fp16", "ddp", "ddp_cpu"])
def test_trainer_configs_compose(trainer):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"trainer={trainer}"])
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    if trainer.startswith("ddp"):
        assert "find_unused_parameters_true" in cfg.trainer.strategy
    if trainer in ("bf16", "fp16"):
        assert cfg.trainer.precision == {"bf16": "bf16-mixed", "fp16": "16-mixed"}[trainer]
