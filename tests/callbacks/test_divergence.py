"""One divergence policy: non-finite losses or weights stop the run loudly, and the last good checkpoint is kept."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import ModelCheckpoint
from test_train import TINY_STYLEGAN2
from torch.utils.data import DataLoader, TensorDataset

from facegen.callbacks.checkpoint_io import AtomicCheckpointIO
from facegen.callbacks.divergence import DivergenceMonitor
from facegen.errors import DivergenceError

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


class NaNWeights(pl.LightningModule):
    """Automatic optimisation; from step ``bad_from`` the loss is NaN, so SGD writes NaN into the weights."""

    def __init__(self, bad_from: int):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.bad_from = bad_from

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).square().mean()
        if self.global_step >= self.bad_from:
            loss = loss * float("nan")
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class SkippedSteps(pl.LightningModule):
    """Manual optimisation with the GAN policy: a non-finite loss is skipped and counted (``skipped_steps``)."""

    def __init__(self, bad_from: int):
        super().__init__()
        self.automatic_optimization = False
        self.layer = torch.nn.Linear(2, 1)
        self.bad_from, self.skipped_steps = bad_from, 0

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        loss = self.layer(batch[0]).square().mean()
        if self.global_step >= self.bad_from:
            loss = loss * float("inf")
        self.log("train/loss_G", loss)
        if torch.isfinite(loss):
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
        else:
            self.skipped_steps += 1
            optimizer.step = getattr(optimizer, "step")  # no step taken: global_step advances only by real steps

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(module, tmp_path, patience=3, batches=12, **checkpoint):
    data = DataLoader(TensorDataset(torch.randn(batches, 2)), batch_size=1)
    callbacks = [DivergenceMonitor(patience=patience)]
    if checkpoint:
        callbacks.append(ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True, **checkpoint))
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
                         enable_checkpointing=bool(checkpoint), default_root_dir=str(tmp_path))
    trainer.fit(module, train_dataloaders=data)
    return trainer


def test_non_finite_weights_stop_at_once_naming_the_step(tmp_path):
    with pytest.raises(DivergenceError, match=r"training diverged at step 4 \(epoch 0, batch 3\): weight layer\."):
        fit(NaNWeights(bad_from=3), tmp_path, patience=100)


def test_non_finite_losses_stop_after_patience_naming_loss_and_step(tmp_path):
    with pytest.raises(DivergenceError) as info:
        fit(SkippedSteps(bad_from=4), tmp_path, patience=3)
    message = str(info.value)
    assert "train/loss_G = inf" in message and "3 bad steps in a row" in message
    assert "batch 6" in message and "optimiser step(s) skipped" in message


def test_a_transient_bad_step_is_tolerated(tmp_path):
    class Once(SkippedSteps):
        def training_step(self, batch, batch_idx):
            self.bad_from = 2 if batch_idx == 2 else 10**9
            return super().training_step(batch, batch_idx)

    fit(Once(bad_from=10**9), tmp_path, patience=2)


class NaNMetric(NaNWeights):
    """Steps normally, but from step ``bad_from`` a logged training value is NaN."""

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).square().mean()
        self.log("train/aux", float("nan") if self.global_step >= self.bad_from else 1.0)
        return loss


def test_the_last_good_checkpoint_is_never_overwritten(tmp_path):
    with pytest.raises(DivergenceError, match=r"not writing a checkpoint.*last good checkpoint \(.*last.ckpt\) is kept"):
        fit(NaNMetric(bad_from=5), tmp_path, patience=10, every_n_train_steps=1)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 5  # written after the last good step, not after the first bad one
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_checkpoint_io_refuses_non_finite_weights(tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"the previous checkpoint")
    with pytest.raises(DivergenceError, match=r"refusing to write .*last.ckpt at step 7: state_dict\['w'\] holds NaN"):
        AtomicCheckpointIO().save_checkpoint({"global_step": 7, "state_dict": {"w": torch.tensor([1.0, float("nan")])}},
                                             path)
    assert path.read_bytes() == b"the previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_stylegan2_with_a_huge_learning_rate_exits_non_zero_and_keeps_last_ckpt(tmp_path):
    """``model=stylegan2`` with lr 1e6: NaN losses from the second batch; the run must stop, say why, exit non-zero."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=stylegan2", "paths.output_dir=/tmp/unused"])
    lr_key = "model.optimizer.lr" if "optimizer" in cfg.model else "model.lr"  # grouped blocks or flat keys
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"a good checkpoint of an earlier run")
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "facegen.train", *TINY_STYLEGAN2, f"{lr_key}=1e6",
                             "+trainer.limit_train_batches=3", "trainer.max_epochs=3", "logger=none",
                             "evaluate_after_fit=false", f"hydra.run.dir={run_dir}",
                             f"paths.cache_dir={tmp_path / 'cache'}"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode != 0
    assert "DivergenceError" in result.stderr and "training diverged" in result.stderr, result.stderr[-3000:]
    assert "train/loss_" in result.stderr and "at step " in result.stderr
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == b"a good checkpoint of an earlier run"
    assert "DivergenceError" in (run_dir / "failed.txt").read_text()
