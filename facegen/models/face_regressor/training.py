"""``train_face_regressor``: the face regressor trained on in-memory synthetic faces through the LightningModule
(:class:`~facegen.models.face_regressor.module.FaceRegressorModule`) and a Lightning ``Trainer``; what
``python -m facegen.models.face_regressor`` runs."""
from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Timer

from facegen.models.face_regressor.data import (
    FaceSource,
    FaceTensorsDataModule,
    load_faces,
)
from facegen.models.face_regressor.files import save_face_regressor
from facegen.models.face_regressor.module import FaceRegressorModule
from facegen.models.face_regressor.network import FaceRegressor, group_slices
from facegen.utils import seed_everything

log = logging.getLogger(__name__)


class EpochHistory(pl.Callback):
    """One row per epoch, ``dict(epoch, train_loss (mean over the epoch), minutes, val_<metric>...)``; optionally
    printed as JSON and the network saved to ``out`` (:func:`save_face_regressor`, ``extra={"history": rows}``)."""

    def __init__(self, out: str | Path | None = None, log_every: int = 1):
        self.out, self.log_every = out, int(log_every)
        self.rows: list[dict] = []
        self.losses: list[float] = []
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        self.losses.append(float(loss))

    def on_train_epoch_end(self, trainer, module) -> None:
        row = {"epoch": trainer.current_epoch + 1, "train_loss": sum(self.losses) / max(1, len(self.losses)),
               "minutes": (time.perf_counter() - self.start) / 60}
        row.update({f"val_{k[4:]}": float(v) for k, v in sorted(trainer.callback_metrics.items())
                    if k.startswith("val/")})
        self.losses = []
        self.rows.append(row)
        if self.log_every and row["epoch"] % self.log_every == 0:
            log.info("face regressor epoch %s", json.dumps(row))
            print(json.dumps(row), flush=True)
        if self.out is not None and trainer.is_global_zero:
            save_face_regressor(module.regressor, self.out, {"history": self.rows})


def expression_bounds(data: dict) -> tuple[float, float] | None:
    """``(0, 1)`` when every expression coefficient of ``data`` lies in [0, 1] (a blendshape rig), else ``None``."""
    exp = data["params"][:, group_slices(data["n_id"], data["n_exp"], data["n_alb"])["expression"]]
    return (0.0, 1.0) if exp.numel() and exp.min() >= 0 and exp.max() <= 1 else None


def train_face_regressor(train: FaceSource, val: FaceSource | None = None, resolution: int | None = None,
                         channels: int = 3, width: int = 32, epochs: int = 30, batch_size: int = 64, lr: float = 2e-3,
                         weight_decay: float = 1e-4, augment: float = 1.0, weights: dict[str, float] | None = None,
                         seed: int = 0, out: str | Path | None = None, max_minutes: float | None = None,
                         log_every: int = 1, accelerator: str = "auto") -> FaceRegressor:
    """Train a :class:`FaceRegressor` on synthetic faces with ground truth (in memory; Lightning, AdamW, one-cycle).

    Args:
        train: a :func:`~facegen.models.face_regressor.data.load_synthetic_faces` dict, or one or more folders
            written by :func:`facegen.data.synthetic.write_image_dataset` (e.g. a ``SyntheticFacesDataModule``
            cache folder).
        val: held-out data (dict or folder), validated after each epoch (``val/landmark_px`` etc.).
        resolution, channels, width: network input (pixels; None = the data's) and size.
        epochs, batch_size, lr, weight_decay: optimisation (``model.optimizer``); augment: photometric augmentation
            strength (``model.augmentation.strength``); weights: per-group loss weights (``model.loss``).
        seed: seeds the initialisation, the batch order and the augmentation.
        out: if given, the network is saved there (:func:`save_face_regressor`) after every epoch and at the end.
        max_minutes: stop after the epoch that passes this wall time (Lightning ``Timer``, per epoch).
        accelerator: Lightning accelerator (``auto``: a GPU when there is one).

    Returns:
        the trained network on the CPU (eval mode); ``model.history`` holds one row per epoch
        (:class:`EpochHistory`).

    Raises:
        DatasetLayoutError: a folder without ``faces.zip``/``params.npz``, or folders of different layouts.
    """
    data = load_faces(train, resolution, channels)
    val_data = load_faces(val, resolution, channels) if val is not None else None
    seed_everything(seed)
    datamodule = FaceTensorsDataModule(data, val_data, batch_size, seed)
    module = FaceRegressorModule(**datamodule.model_kwargs(),
                                 network={"width": width, "exp_bounds": expression_bounds(data)}, loss=weights,
                                 augmentation={"strength": augment}, optimizer={"lr": lr, "weight_decay": weight_decay},
                                 save_path=None if out is None else str(out))
    history = EpochHistory(out, log_every)
    callbacks: list[pl.Callback] = [history]
    if max_minutes is not None:
        callbacks.append(Timer(duration=timedelta(minutes=float(max_minutes)), interval="epoch"))
    with tempfile.TemporaryDirectory(prefix="face_regressor_") as scratch:
        root = Path(out).parent if out is not None else Path(scratch)
        trainer = pl.Trainer(accelerator=accelerator, devices=1, max_epochs=epochs, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, limit_val_batches=0 if val_data is None else 1.0,
                             callbacks=callbacks, default_root_dir=str(root))
        trainer.fit(module, datamodule=datamodule)
    if history.rows and len(history.rows) < epochs:
        log.info("face regressor: stopped after %d epochs (max_minutes=%s)", len(history.rows), max_minutes)
    model = module.regressor.cpu().eval()
    model.history = history.rows
    if out is not None:
        save_face_regressor(model, out, {"history": model.history})
    return model

