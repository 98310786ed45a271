"""StyleRig stage 1 as a LightningModule (Tewari et al., CVPR 2020, sec. 4): train DFR ``F: w -> p`` (``model=dfr``).

``F`` is trained self-supervised on images ``G(w)`` of a frozen generator: masked photometric loss against the
rendered face, landmark loss against a landmark model run on ``G(w)`` (``landmark_model_path``; none = no
landmark loss) and the statistical regulariser (:mod:`facegen.models.stylerig.losses`). Batches are W+ latents of
:class:`facegen.models.stylerig.latents.LatentDataModule`, which also supplies the data arguments
(``generator_path``, ``img_resolution``, ``num_ws``, ``w_dim``, ``render``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from facegen.config.blocks import block, plain
from facegen.config.spec import build, complete, optimizer_factory
from facegen.errors import CheckpointError, ConfigError
from facegen.models.stylerig.evaluation import evaluate_dfr, pair_rows
from facegen.models.stylerig.frozen import (
    STATE_KEY,
    FrozenGeneratorModule,
    MorphableSpec,
    stylerig_state,
)
from facegen.models.stylerig.losses import render_loss, statistical_regulariser

#: ``model.network`` default: :class:`~facegen.models.stylerig.dfr.DFRNetwork` (num_ws, w_dim and the
#: coefficient counts come from the generator and the morphable model)
DEFAULT_NETWORK: dict[str, Any] = {"_target_": "facegen.models.stylerig.dfr.DFRNetwork", "hidden": [1024, 512],
                                   "output_scale": None, "expression_bounds": [0.0, 1.0]}
#: ``model.optimizer`` default (over ``F``'s parameters only)
DEFAULT_OPTIMIZER: dict[str, Any] = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4}


@dataclass(frozen=True)
class DFRLoss:
    """Weights of ``L_F = L_render(I_w, F(w)) + lambda_reg L_reg(F(w))`` (StyleRig sec. 4; ``model.loss``).

    Attributes:
        lambda_land: weight of ``L_land`` inside ``L_render`` (``L_land`` is in (pixels / image size)^2, ``L_photo``
            a mean squared RGB error in [0, 1] units over the face pixels).
        lambda_reg: weight of the statistical regulariser ``L_reg``.
        w_id, w_exp, w_alb: weights of ``||alpha||^2``, ``||delta||^2``, ``||beta||^2`` inside ``L_reg``
            (coefficients in standard deviations).
    """

    lambda_land: float = 100.0
    lambda_reg: float = 1e-3
    w_id: float = 1.0
    w_exp: float = 1.0
    w_alb: float = 1.0

    def check(self, where: str) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ConfigError(f"{where}.{f.name}: a loss weight must be >= 0, got {getattr(self, f.name)}")


@dataclass(frozen=True)
class DFREvaluation:
    """Sizes of :func:`facegen.models.stylerig.evaluation.evaluate_dfr` and of the validation pictures
    (``model.evaluation``).

    Attributes:
        projection_steps: optimisation steps projecting each ground-truth face into W
            (:func:`facegen.models.stylegan2.projection.project`).
        picture_count: (``G(w)``, reconstruction) pairs in the validation and test pictures.
    """

    projection_steps: int = 200
    picture_count: int = 8

    def check(self, where: str) -> None:
        if self.projection_steps < 0 or self.picture_count < 0:
            raise ConfigError(f"{where}: projection_steps and picture_count must be >= 0, got {self}")


class DFR(FrozenGeneratorModule):
    """Train StyleRig's DFR network ``F`` on images of a frozen generator (``model=dfr``).

    Args:
        generator_path, img_resolution, num_ws, w_dim, render: from ``LatentDataModule.model_kwargs()``
            (generator file, its image size in pixels and W+ shape, the face world's camera).
        network: ``F``'s block, ``{_target_: facegen.models.stylerig.dfr.DFRNetwork, hidden, output_scale,
            expression_bounds}`` (:data:`DEFAULT_NETWORK`; bounds ``[0, 1]`` for blendshape rigs, ``null`` for PCA
            expression spaces); built with ``num_ws``, ``w_dim``, ``n_id``, ``n_exp``, ``n_alb``.
        morphable: :class:`~facegen.models.stylerig.frozen.MorphableSpec` (default the procedural face).
        landmark_model_path: face-regressor file for landmarks on ``G(w)``; ``None`` = no landmark loss.
        loss: :class:`DFRLoss`. optimizer: ``{_target_: torch.optim.Adam, _partial_: true, lr: 1.0e-4}``
            (:data:`DEFAULT_OPTIMIZER`; keys without ``_target_`` are merged into it).
        evaluation: :class:`DFREvaluation`.
        generator_kwargs: set by :meth:`from_checkpoint` (the generator's architecture; weights from the checkpoint).

    Raises:
        MissingWeightsError: the generator or landmark file is absent.
        CheckpointError: the generator does not match the data arguments, or is conditional.
        ConfigError: a block with an unknown key, a wrong type or an untrusted ``_target_``.
    """

    def __init__(self, generator_path: str | None = None, img_resolution: int = 64, num_ws: int = 10,
                 w_dim: int = 512, render: Mapping[str, Any] | None = None, network: Mapping[str, Any] | None = None,
                 morphable: Mapping[str, Any] | MorphableSpec | None = None, landmark_model_path: str | None = None,
                 loss: Mapping[str, Any] | DFRLoss | None = None, optimizer: Mapping[str, Any] | None = None,
                 evaluation: Mapping[str, Any] | DFREvaluation | None = None,
                 generator_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        self.network_spec = complete(network, DEFAULT_NETWORK, "model.network")
        morphable = block(MorphableSpec, morphable, "model.morphable")
        self.loss = block(DFRLoss, loss, "model.loss")
        self.optimizer_spec = complete(optimizer, DEFAULT_OPTIMIZER, "model.optimizer")
        self.evaluation = block(DFREvaluation, evaluation, "model.evaluation")
        self.save_hyperparameters({
            "generator_path": generator_path, "img_resolution": img_resolution, "num_ws": num_ws, "w_dim": w_dim,
            "render": plain(render), "network": self.network_spec, "morphable": plain(morphable),
            "landmark_model_path": landmark_model_path, "loss": plain(self.loss), "optimizer": self.optimizer_spec,
            "evaluation": plain(self.evaluation)})
        self._setup_common(generator_path, img_resolution, num_ws, w_dim, render, morphable, landmark_model_path,
                           generator_kwargs)
        self.dfr = build(self.network_spec, "model.network", num_ws=self.G.num_ws, w_dim=self.G.w_dim,
                         n_id=self.layout.n_id, n_exp=self.layout.n_exp, n_alb=self.layout.n_alb)
        self.dfr.w_avg.copy_(self.G.mapping.w_avg)

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        """``F(w)``: ``[B, num_ws, w_dim]`` -> ``p [B, P]`` (StyleGANInputError for another shape)."""
        return self.dfr(w_plus)

    def losses(self, w_plus: torch.Tensor, images: torch.Tensor, landmarks: torch.Tensor | None = None
               ) -> dict[str, torch.Tensor]:
        """``L_F = L_render(I_w, F(w)) + lambda_reg L_reg(F(w))`` (batch means) and its terms.

        ``w_plus [B, num_ws, w_dim]``; ``images [B, 3, R, R]`` in [-1, 1]; ``landmarks [B, 68, 2]`` pixels or
        ``None``. Returns ``loss``, ``photo``, ``land``, ``reg`` (scalars), ``params [B, P]``, ``rendering``.
        """
        weights = self.loss
        p = self.dfr(w_plus)
        rl = render_loss(self.renderer, (images + 1) / 2, p, landmarks, weights.lambda_land)
        reg = statistical_regulariser(p, self.layout, weights.w_id, weights.w_exp, weights.w_alb)
        total = rl.total + weights.lambda_reg * reg
        return {"loss": total.mean(), "photo": rl.photo.mean(), "land": rl.land.mean(), "reg": reg.mean(),
                "params": p, "rendering": rl.rendering}

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        w = self._check_w(batch)
        images = self.batch_images(batch)
        out = self.losses(w, images, self.detect_landmarks(images))
        self.log("train/loss", out["loss"], prog_bar=True)
        for k in ("photo", "land", "reg"):
            self.log(f"train/{k}", out[k])
        return out["loss"]

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        w = self._check_w(batch)
        images = self.batch_images(batch)
        out = self.losses(w, images, self.detect_landmarks(images))
        for k in ("loss", "photo", "land", "reg"):
            self.log(f"val/{k}", out[k], prog_bar=k == "loss")
        if batch_idx == 0 and self.trainer.is_global_zero:
            n = min(self.evaluation.picture_count, w.shape[0])
            self._pictures("val/dfr_reconstruction",
                           [pair_rows(images[:n], out["rendering"].image[:n] * 2 - 1)])

    def configure_optimizers(self):
        return optimizer_factory(self.optimizer_spec, "model.optimizer")(self.dfr.parameters())

    def evaluate_run(self, datamodule, split: str = "test") -> dict[str, list[dict[str, Any]]]:
        """DFR tables on ``split`` and the ground-truth set (:func:`.evaluation.evaluate_dfr`)."""
        return self._in_eval_mode(evaluate_dfr, datamodule, split)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[STATE_KEY] = {"generator_kwargs": self.generator_kwargs(), "dfr_config": self.dfr.config(),
                                 "generator_fingerprint": self.generator_fingerprint()}

    @classmethod
    def checkpoint_kwargs(cls, checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
        """See :meth:`FrozenGeneratorModule.checkpoint_kwargs`.

        Raises:
            CheckpointError: not a DFR checkpoint (e.g. a StyleRig one).
        """
        kwargs = super().checkpoint_kwargs(checkpoint, source)
        if "network" in stylerig_state(checkpoint, source).get("dfr_config", {}):
            raise CheckpointError(f"{source}: not a DFR checkpoint (a StyleRig one?)")
        return kwargs

