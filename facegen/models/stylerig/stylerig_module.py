"""StyleRig stage 2 as a LightningModule (Tewari et al., CVPR 2020, sec. 5): RigNets on a frozen generator and a
frozen, trained DFR (``model=stylerig``).

The trained DFR comes from ``dfr_path`` (a :class:`~facegen.models.stylerig.dfr_module.DFR` checkpoint; its
morphable model and camera are used). One :class:`~facegen.models.stylerig.rignet.RigNet` per control is trained
with ``w_rec L_rec + w_edit L_edit + w_consist L_consist`` (:mod:`facegen.models.stylerig.losses`); pairs
``(w, v)`` are a batch and the same batch rolled by one, and with several controls batches cycle through them.
The checkpoint keeps ``G`` and ``F``, so :meth:`StyleRig.from_checkpoint` needs neither ``dfr_path`` nor the
generator file.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from facegen.checkpoints import load
from facegen.config.blocks import block, plain
from facegen.config.spec import build, complete, optimizer_factory
from facegen.errors import CheckpointError, ConfigError, MissingWeightsError
from facegen.models.stylerig.dfr import DFRNetwork
from facegen.models.stylerig.evaluation import evaluate_stylerig
from facegen.models.stylerig.frozen import (
    STATE_KEY,
    FrozenGeneratorModule,
    MorphableSpec,
    stylerig_state,
)
from facegen.models.stylerig.losses import (
    consistency_loss,
    edit_loss,
    reconstruction_loss,
)

log = logging.getLogger(__name__)

#: ``model.network`` default: :class:`~facegen.models.stylerig.rignet.RigNets` (num_ws, w_dim and the
#: coefficient counts come from the generator and the DFR); ``control_layers: null`` = DEFAULT_CONTROL_LAYERS
DEFAULT_NETWORK: dict[str, Any] = {"_target_": "facegen.models.stylerig.rignet.RigNets",
                                   "controls": ["pose", "expression", "illumination"], "control_layers": None,
                                   "latent_dim": 32, "decoder_hidden": None}
#: ``model.optimizer`` default (over the RigNets' parameters only)
DEFAULT_OPTIMIZER: dict[str, Any] = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}


@dataclass(frozen=True)
class StyleRigLoss:
    """Weights of ``L_total = w_rec L_rec + w_edit L_edit + w_consist L_consist`` (StyleRig sec. 5; ``model.loss``).

    The paper uses 1, 1, 1 with ``L_photo`` summed over pixels; our ``L_photo`` is a mean over face pixels, so the
    render terms get 300 (at 1:1:1 the RigNets stay at the identity edit; measured in experiments/stylerig/README.md).

    Attributes:
        w_rec: weight of ``L_rec = ||RigNet(w, F(w)) - w||^2`` (W+ units).
        w_edit, w_consist: weights of ``L_edit`` and ``L_consist`` (render losses).
        lambda_land: weight of ``L_land`` ((pixels / image size)^2) inside each render loss.
    """

    w_rec: float = 1.0
    w_edit: float = 300.0
    w_consist: float = 300.0
    lambda_land: float = 100.0

    def check(self, where: str) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ConfigError(f"{where}.{f.name}: a loss weight must be >= 0, got {getattr(self, f.name)}")


@dataclass(frozen=True)
class StyleRigEvaluation:
    """Sizes of :func:`facegen.models.stylerig.evaluation.evaluate_stylerig` (``model.evaluation``).

    Attributes:
        pairs: test latents ``w`` (each paired with the next one, ``v``) in the tables.
        grid_size: sources and targets of each edit grid (Fig. 5/9 style).
        sweep_latents: latents (rows) of each one-parameter sweep.
        sweep_steps: values (columns) of each sweep (yaw -0.5..0.5 rad, jaw open 0..1, light azimuth -60..60 deg).
        identity_dlib: add dlib's identity distance between ``G(w)`` and ``G(w_hat)`` to the ``identity`` table
            (:mod:`facegen.faces`; about 0.1-0.3 s per image on one CPU core).
    """

    pairs: int = 64
    grid_size: int = 4
    sweep_latents: int = 3
    sweep_steps: int = 7
    identity_dlib: bool = True

    def check(self, where: str) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ConfigError(f"{where}.{f.name}: must be >= 0, got {getattr(self, f.name)}")


class StyleRig(FrozenGeneratorModule):
    """Train RigNets on a frozen generator and a frozen, trained DFR (``model=stylerig``).

    Args:
        generator_path, img_resolution, num_ws, w_dim, render: from ``LatentDataModule.model_kwargs()``.
        dfr_path: checkpoint of a trained :class:`~facegen.models.stylerig.dfr_module.DFR`
            (``runs/dfr/<time>/checkpoints/last.ckpt``); its morphable model and camera are used. ``None``: an
            untrained DFR (smoke tests only; one warning).
        morphable: :class:`~facegen.models.stylerig.frozen.MorphableSpec`, used only when ``dfr_path`` is ``None``.
        landmark_model_path: face-regressor file for landmarks of ``I_v``, ``I_w``; ``None`` = none.
        network: the RigNets' block, ``{_target_: facegen.models.stylerig.rignet.RigNets, controls, control_layers,
            latent_dim, decoder_hidden}`` (:data:`DEFAULT_NETWORK`; ``l_i`` = ``latent_dim`` is 32 in the paper).
        loss: :class:`StyleRigLoss`. optimizer: ``{_target_: torch.optim.Adam, _partial_: true, lr: 1.0e-3}``.
        evaluation: :class:`StyleRigEvaluation`.
        generator_kwargs, dfr_config: set by :meth:`from_checkpoint`.

    Raises:
        MissingWeightsError: ``dfr_path``, the generator or the landmark file is absent.
        CheckpointError: ``dfr_path`` is not a DFR checkpoint, was trained on another generator (weights differ)
            or for another W+ shape.
        ConfigError: a block with an unknown key, a wrong type or an untrusted ``_target_``.
    """

    frozen_names = ("G", "dfr")

    def __init__(self, generator_path: str | None = None, img_resolution: int = 64, num_ws: int = 10,
                 w_dim: int = 512, render: Mapping[str, Any] | None = None, dfr_path: str | None = None,
                 morphable: Mapping[str, Any] | MorphableSpec | None = None, landmark_model_path: str | None = None,
                 network: Mapping[str, Any] | None = None, loss: Mapping[str, Any] | StyleRigLoss | None = None,
                 optimizer: Mapping[str, Any] | None = None,
                 evaluation: Mapping[str, Any] | StyleRigEvaluation | None = None,
                 generator_kwargs: Mapping[str, Any] | None = None, dfr_config: Mapping[str, Any] | None = None):
        super().__init__()
        self.network_spec = complete(network, DEFAULT_NETWORK, "model.network")
        self.loss = block(StyleRigLoss, loss, "model.loss")
        self.optimizer_spec = complete(optimizer, DEFAULT_OPTIMIZER, "model.optimizer")
        self.evaluation = block(StyleRigEvaluation, evaluation, "model.evaluation")
        self.save_hyperparameters({
            "generator_path": generator_path, "img_resolution": img_resolution, "num_ws": num_ws, "w_dim": w_dim,
            "render": plain(render), "dfr_path": dfr_path,
            "morphable": None if morphable is None else plain(block(MorphableSpec, morphable, "model.morphable")),
            "landmark_model_path": landmark_model_path, "network": self.network_spec, "loss": plain(self.loss),
            "optimizer": self.optimizer_spec, "evaluation": plain(self.evaluation)})
        trained = None                                   # (network config, state, generator kwargs) of dfr_path
        if dfr_config is not None:                       # from_checkpoint: architecture only, weights follow
            morphable, render = dfr_config["morphable"], dfr_config["render"]
            dfr_network = dfr_config["network"]
        elif dfr_path not in (None, "", "null"):
            trained = read_dfr_checkpoint(dfr_path)
            morphable, render = trained["hyper_parameters"].get("morphable"), trained["hyper_parameters"].get("render")
            dfr_network = trained["network"]
        else:
            log.warning("dfr_path is not set: StyleRig uses an untrained DFR (smoke test only); train one with "
                        "`python -m facegen.train model=dfr`")
            dfr_network = None
        self._setup_common(generator_path, img_resolution, num_ws, w_dim, render, morphable, landmark_model_path,
                           generator_kwargs)
        self.morphable_spec = None if morphable is None else plain(morphable)
        self.render_spec = None if render is None else dict(render)
        if dfr_network is None:
            dfr_network = {"num_ws": self.G.num_ws, "w_dim": self.G.w_dim, "n_id": self.layout.n_id,
                           "n_exp": self.layout.n_exp, "n_alb": self.layout.n_alb}
        self.dfr = DFRNetwork(**dfr_network)
        if trained is not None:
            if (self.dfr.num_ws, self.dfr.w_dim) != (self.G.num_ws, self.G.w_dim):
                raise CheckpointError(f"dfr_path {dfr_path} was trained for W+ [{self.dfr.num_ws}, {self.dfr.w_dim}], "
                                      f"the generator has [{self.G.num_ws}, {self.G.w_dim}]")
            fingerprint = trained.get("generator_fingerprint")
            if fingerprint is not None and not math.isclose(fingerprint, self.generator_fingerprint(), rel_tol=1e-6):
                raise CheckpointError(f"dfr_path {dfr_path} was trained on another generator than {generator_path} "
                                      "(weights differ); pass the generator_path the DFR was trained with")
            self.dfr.load_state_dict(trained["state"])
        elif dfr_config is None:
            self.dfr.w_avg.copy_(self.G.mapping.w_avg)
        self.dfr.eval().requires_grad_(False)
        if self.dfr.layout != self.layout:
            raise CheckpointError(f"DFR parameter layout {self.dfr.layout} differs from the morphable model's "
                                  f"{self.layout}")
        self.rignets = build(self.network_spec, "model.network", num_ws=self.G.num_ws, w_dim=self.G.w_dim,
                             n_id=self.layout.n_id, n_exp=self.layout.n_exp, n_alb=self.layout.n_alb)
        self.controls = list(getattr(self.rignets, "controls", self.rignets.keys()))

    def edit(self, w_plus: torch.Tensor, p: torch.Tensor, control: str) -> torch.Tensor:
        """``w_hat = RigNet_control(w, p)``: ``[B, num_ws, w_dim]`` for target parameters ``p [B, P]``."""
        return self.rignets[control](w_plus, p)

    def losses(self, w_plus: torch.Tensor, images: torch.Tensor, control: str,
               landmarks: torch.Tensor | None = None, v_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``L_total = w_rec L_rec + w_edit L_edit + w_consist L_consist`` for pairs ``(w, v)``.

        ``v`` is ``w_plus[v_index]`` (default: the batch rolled by one), ``I_v``/landmarks likewise.
        ``w_plus [B, num_ws, w_dim]``; ``images [B, 3, R, R]`` in [-1, 1]; ``landmarks [B, 68, 2]`` or ``None``.
        """
        weights = self.loss
        rig = self.rignets[control]
        if v_index is None:
            v_index = torch.roll(torch.arange(w_plus.shape[0], device=w_plus.device), 1)
        image_w = (images + 1) / 2
        image_v = image_w[v_index]
        land_v = None if landmarks is None else landmarks[v_index]
        with torch.no_grad():
            p_w = self.dfr(w_plus)
        p_v = p_w[v_index]
        w_rec = rig(w_plus, p_w)                                  # RigNet(w, F(w)) should give w back
        w_hat = rig(w_plus, p_v)
        p_hat = self.dfr(w_hat)                                   # gradients flow through the frozen F to RigNet
        rec = reconstruction_loss(w_rec, w_plus)
        edit = edit_loss(self.renderer, image_v, p_v, p_hat, rig.param_mask, land_v, weights.lambda_land)
        consist = consistency_loss(self.renderer, image_w, p_w, p_hat, rig.param_mask, landmarks, weights.lambda_land)
        total = weights.w_rec * rec + weights.w_edit * edit.total + weights.w_consist * consist.total
        return {"loss": total.mean(), "rec": rec.mean(), "edit": edit.total.mean(), "consist": consist.total.mean(),
                "edit_photo": edit.photo.mean(), "edit_land": edit.land.mean(), "w_hat": w_hat, "p_hat": p_hat,
                "p_v": p_v, "p_w": p_w}

    def _control(self, batch_idx: int) -> str:
        step = self.global_step if self._trainer is not None else batch_idx
        return self.controls[step % len(self.controls)]

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        w = self._check_w(batch)
        images = self.batch_images(batch)
        control = self._control(batch_idx)
        out = self.losses(w, images, control, self.detect_landmarks(images))
        self.log("train/loss", out["loss"], prog_bar=True)
        for k in ("rec", "edit", "consist"):
            self.log(f"train/{control}/{k}", out[k])
        return out["loss"]

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        w = self._check_w(batch)
        images = self.batch_images(batch)
        landmarks = self.detect_landmarks(images)
        total = 0.0
        for control in self.controls:
            out = self.losses(w, images, control, landmarks)
            total = total + out["loss"]
            for k in ("rec", "edit", "consist"):
                self.log(f"val/{control}/{k}", out[k])
        self.log("val/loss", total / len(self.controls), prog_bar=True)

    def configure_optimizers(self):
        return optimizer_factory(self.optimizer_spec, "model.optimizer")(self.rignets.parameters())

    def evaluate_run(self, datamodule, split: str = "test") -> dict[str, list[dict[str, Any]]]:
        """Edit accuracy, preservation and identity tables, edit grids and sweeps
        (:func:`facegen.models.stylerig.evaluation.evaluate_stylerig`)."""
        return self._in_eval_mode(evaluate_stylerig, datamodule, split)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[STATE_KEY] = {"generator_kwargs": self.generator_kwargs(),
                                 "dfr_config": {"network": self.dfr.config(), "morphable": self.morphable_spec,
                                                "render": self.render_spec}}

    @classmethod
    def checkpoint_kwargs(cls, checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
        """The generator's architecture and the DFR's network, morphable model and camera from
        ``checkpoint["facegen_stylerig"]`` (weights from the state dict): no ``dfr_path`` or generator file needed.

        Raises:
            CheckpointError: not a StyleRig checkpoint (e.g. a DFR one).
        """
        kwargs = super().checkpoint_kwargs(checkpoint, source)
        dfr_config = stylerig_state(checkpoint, source).get("dfr_config") or {}
        if "network" not in dfr_config:
            raise CheckpointError(f"{source}: not a StyleRig checkpoint (a DFR one?); expected "
                                  "runs/stylerig/.../last.ckpt")
        return {**kwargs, "dfr_config": dfr_config}


def read_dfr_checkpoint(path: str | Path) -> dict:
    """The DFR network of a :class:`~facegen.models.stylerig.dfr_module.DFR` checkpoint without building the module:
    ``dict(network (DFRNetwork kwargs), state (its state dict), hyper_parameters, generator_kwargs,
    generator_fingerprint)``. Read with :func:`facegen.checkpoints.load`.

    Raises:
        MissingWeightsError: the file does not exist.
        CheckpointError: not a DFR checkpoint.
    """
    if not Path(path).expanduser().is_file():
        raise MissingWeightsError(f"dfr_path {path} does not exist; train one with "
                                  "`python -m facegen.train model=dfr` and pass its checkpoints/last.ckpt")
    checkpoint = load(Path(path).expanduser(), map_location="cpu")
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a DFR checkpoint (no Lightning checkpoint dict)")
    state = stylerig_state(checkpoint, str(path))
    if "dfr_config" not in state or "network" in state["dfr_config"]:
        raise CheckpointError(f"{path}: not a DFR checkpoint (a StyleRig one?); expected runs/dfr/.../last.ckpt")
    weights = {k[len("dfr."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("dfr.")}
    return {"network": state["dfr_config"], "state": weights, "hyper_parameters": dict(checkpoint["hyper_parameters"]),
            "generator_kwargs": state["generator_kwargs"], "generator_fingerprint": state.get("generator_fingerprint")}
