"""Training of the face regressor as a LightningModule: the one training path (``python -m facegen.train
model=face_regressor`` and ``python -m facegen.models.face_regressor``).

Full supervision on synthetic faces whose ground truth is known (MoFA-style parameter regressor, Tewari et al.
2017, trained here with the weighted MSE of :func:`~facegen.models.face_regressor.loss.regressor_loss` instead of
a self-supervised photometric loss); AdamW with a one-cycle learning rate stepped per batch.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from facegen.config.blocks import block, plain
from facegen.config.spec import build, complete, optimizer_factory
from facegen.errors import CheckpointError, ConfigError
from facegen.models.base import FacegenModule
from facegen.models.face_regressor.augmentation import Augmentation, augment_images
from facegen.models.face_regressor.files import save_face_regressor
from facegen.models.face_regressor.loss import LossWeights, regressor_loss

log = logging.getLogger(__name__)

#: ``model.network`` default: :class:`~facegen.models.face_regressor.network.FaceRegressor` (resolution, channels,
#: coefficient counts, expression names and target normalisation come from the data)
DEFAULT_NETWORK: dict[str, Any] = {"_target_": "facegen.models.face_regressor.network.FaceRegressor", "width": 32,
                                   "exp_bounds": [0.0, 1.0]}
#: ``model.optimizer`` default
DEFAULT_OPTIMIZER: dict[str, Any] = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 2e-3,
                                     "weight_decay": 1e-4}


@dataclass(frozen=True)
class OneCycle:
    """The learning-rate schedule (``model.scheduler``): :class:`torch.optim.lr_scheduler.OneCycleLR` stepped per
    batch over the whole run (``trainer.estimated_stepping_batches``), peaking at the optimiser's ``lr``.

    Attributes:
        pct_start: fraction of the steps spent warming up.
        div_factor: initial lr = lr / div_factor. final_div_factor: final lr = initial lr / final_div_factor.
    """

    pct_start: float = 0.15
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def check(self, where: str) -> None:
        if not 0 < self.pct_start < 1 or self.div_factor <= 0 or self.final_div_factor <= 0:
            raise ConfigError(f"{where}: expected 0 < pct_start < 1 and positive div factors, got {self}")


class FaceRegressorModule(FacegenModule):
    """Lightning training of :class:`~facegen.models.face_regressor.network.FaceRegressor`.

    Args:
        img_resolution, img_channels, n_id, n_exp, n_alb, exp_names, target_mean, target_std, c_dim: from the
            datamodule's ``model_kwargs()`` (:class:`facegen.data.synthetic.SyntheticFacesDataModule` with
            ``ground_truth=True``, or :class:`~facegen.models.face_regressor.data.FaceTensorsDataModule`);
            ``target_mean``/``target_std`` ``[P + 136]`` standardise (params, landmarks in pixels).
        network: ``{_target_: facegen.models.face_regressor.network.FaceRegressor, width, exp_bounds}``
            (:data:`DEFAULT_NETWORK`; ``exp_bounds`` ``null`` for PCA expression spaces).
        loss: :class:`~facegen.models.face_regressor.loss.LossWeights` (some keys; others keep the defaults).
        augmentation: :class:`~facegen.models.face_regressor.augmentation.Augmentation`.
        optimizer: ``{_target_: torch.optim.AdamW, _partial_: true, lr: 2.0e-3, weight_decay: 1.0e-4}``.
        scheduler: :class:`OneCycle`.
        save_path: where :func:`save_face_regressor` writes the network at the end of training
            (``None`` = ``<run folder>/regressor.pt``).

    Batches: ``image [B, C, R, R]`` in [-1, 1], ``params [B, P]``, ``landmarks [B, 68, 2]`` pixels. Logs
    ``train/loss``, ``train/<group>_mse``, ``val/loss``, ``val/landmark_px``, ``val/exp_mae``, ``val/id_mae``,
    ``val/rotation_deg``.

    Raises:
        CheckpointError: an invalid resolution or channel count, or a normalisation of the wrong length.
        ConfigError: a block with an unknown key, a wrong type or an untrusted ``_target_``.
    """

    def __init__(self, img_resolution: int, img_channels: int = 3, n_id: int = 20, n_exp: int = 28, n_alb: int = 10,
                 target_mean=None, target_std=None, exp_names: Sequence[str] | None = None, c_dim: int = 0,
                 network: Mapping[str, Any] | None = None, loss: Mapping[str, float] | LossWeights | None = None,
                 augmentation: Mapping[str, Any] | Augmentation | None = None,
                 optimizer: Mapping[str, Any] | None = None, scheduler: Mapping[str, Any] | OneCycle | None = None,
                 save_path: str | None = None):
        super().__init__()
        self.network_spec = complete(network, DEFAULT_NETWORK, "model.network")
        self.loss = block(LossWeights, loss, "model.loss")
        self.augmentation = block(Augmentation, augmentation, "model.augmentation")
        self.optimizer_spec = complete(optimizer, DEFAULT_OPTIMIZER, "model.optimizer")
        self.scheduler = block(OneCycle, scheduler, "model.scheduler")
        self.save_path = save_path
        # target_mean/target_std/exp_names are data, stored by on_save_checkpoint (see checkpoint_kwargs)
        self.save_hyperparameters({
            "img_resolution": img_resolution, "img_channels": img_channels, "n_id": n_id, "n_exp": n_exp,
            "n_alb": n_alb, "c_dim": c_dim, "network": self.network_spec, "loss": plain(self.loss),
            "augmentation": plain(self.augmentation), "optimizer": self.optimizer_spec,
            "scheduler": plain(self.scheduler), "save_path": save_path})
        self.regressor = build(self.network_spec, "model.network", resolution=img_resolution, channels=img_channels,
                               n_id=n_id, n_exp=n_exp, n_alb=n_alb, target_mean=target_mean, target_std=target_std,
                               exp_names=exp_names)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x = augment_images(batch["image"], None, self.augmentation.strength)
        loss, terms = regressor_loss(self.regressor, x, batch["params"], batch["landmarks"], self.loss)
        self.log("train/loss", loss, prog_bar=True)
        for name, value in terms.items():
            self.log(f"train/{name}_mse", value)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, _ = regressor_loss(self.regressor, batch["image"], batch["params"], batch["landmarks"], self.loss)
        pred = self.regressor.predict(batch["image"])
        s = self.regressor.slices
        size = len(batch["image"])
        self.log("val/loss", loss, batch_size=size, prog_bar=True)
        self.log("val/landmark_px", (pred["landmarks"] - batch["landmarks"]).norm(dim=-1).mean(), batch_size=size)
        self.log("val/exp_mae", (pred["exp"] - batch["params"][:, s["expression"]]).abs().mean(), batch_size=size)
        self.log("val/id_mae", (pred["id"] - batch["params"][:, s["identity"]]).abs().mean(), batch_size=size)
        self.log("val/rotation_deg", (pred["rotation"] - batch["params"][:, s["rotation"]]).abs().mean()
                 * 180 / math.pi, batch_size=size)

    def configure_optimizers(self):
        optimiser = optimizer_factory(self.optimizer_spec, "model.optimizer")(self.parameters())
        max_lr = [group["lr"] for group in optimiser.param_groups]
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=max_lr if len(max_lr) > 1 else max_lr[0],
            total_steps=max(1, self.trainer.estimated_stepping_batches), pct_start=self.scheduler.pct_start,
            div_factor=self.scheduler.div_factor, final_div_factor=self.scheduler.final_div_factor)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["face_regressor_config"] = self.regressor.config()

    @classmethod
    def checkpoint_kwargs(cls, checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
        """The data-derived arguments (``target_mean``, ``target_std``, ``exp_names``) from
        ``checkpoint["face_regressor_config"]``.

        Raises:
            CheckpointError: no ``face_regressor_config`` entry.
        """
        config = checkpoint.get("face_regressor_config")
        if not isinstance(config, dict):
            raise CheckpointError(f"{source}: not a face-regressor checkpoint (no 'face_regressor_config')")
        return {"target_mean": config["target_mean"], "target_std": config["target_std"],
                "exp_names": config.get("exp_names")}

    def on_train_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        path = Path(self.save_path) if self.save_path else Path(self.trainer.default_root_dir) / "regressor.pt"
        save_face_regressor(self.regressor, path)
        log.info("face regressor written to %s", path)
