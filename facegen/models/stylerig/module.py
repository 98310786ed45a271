"""StyleRig's two training stages as LightningModules (Tewari et al., CVPR 2020): ``DFR`` then ``StyleRig``.

Both hold a frozen StyleGAN2 generator loaded from ``generator_path`` (facegen ``.ckpt``, rosinality
``.pt`` or NVlabs ``.pkl``, :func:`facegen.models.stylegan2.formats.load_generator`) and train on
batches of its W+ latents (:class:`facegen.models.stylerig.latents.LatentDataModule`, which supplies
``generator_path``, ``num_ws``, ``w_dim``, ``img_resolution`` and the face-world camera ``render``).

- :class:`DFR` (``model=dfr``) trains ``F: w -> p`` self-supervised on ``G(w)``: masked photometric
  loss against the rendered face, landmark loss against a landmark model run on ``G(w)``
  (``landmark_model_path``; none = no landmark loss) and the statistical regulariser.
- :class:`StyleRig` (``model=stylerig``) loads the trained DFR (``dfr_path``), freezes it with ``G``
  and trains one :class:`~facegen.models.stylerig.rignet.RigNet` per control with
  ``L_rec + L_edit + L_consist`` (:mod:`facegen.models.stylerig.losses`). Pairs ``(w, v)`` are a batch
  and the same batch rolled by one. With several controls, batches cycle through them.

Checkpoints keep ``G`` (and for StyleRig ``F``) so that ``Module.from_checkpoint(path)`` needs no
other file.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule

from facegen.checkpoints import load
from facegen.errors import CheckpointError, MissingWeightsError, StyleGANInputError
from facegen.models.face_regressor import load_face_regressor
from facegen.models.stylegan2.formats import load_generator
from facegen.models.stylegan2.networks import Generator
from facegen.models.stylerig.dfr import DFRNetwork
from facegen.models.stylerig.evaluation import (
    evaluate_dfr,
    evaluate_stylerig,
    pair_rows,
)
from facegen.models.stylerig.losses import (
    consistency_loss,
    edit_loss,
    reconstruction_loss,
    render_loss,
    statistical_regulariser,
)
from facegen.models.stylerig.rignet import build_rignets
from facegen.morphable import ProceduralFaceModel, load_ict_facekit
from facegen.morphable.params import ParamLayout
from facegen.render import FaceRenderer, PerspectiveCamera
from facegen.reporting import log_images

log = logging.getLogger(__name__)

_STATE_KEY = "facegen_stylerig"
DEFAULT_RENDER = {"fov_degrees": 12.0, "margin": 1.25, "background": [0.0, 0.0, 0.0]}


def build_morphable(spec: Mapping[str, Any] | None):
    """The morphable model from its config: ``{name: procedural, seed: 0}`` (default) or
    ``{name: ict, root: ..., n_id: ..., face_area: true, cache_dir: ...}``.

    Raises:
        MissingWeightsError: an unknown name, or ICT without ``root``.
    """
    spec = dict(spec or {})
    name = spec.pop("name", "procedural")
    if name == "procedural":
        return ProceduralFaceModel(seed=int(spec.get("seed", 0)))
    if name == "ict":
        if not spec.get("root"):
            raise MissingWeightsError("morphable.name=ict needs morphable.root (the ICT-FaceKit folder)")
        return load_ict_facekit(spec["root"], face_area=bool(spec.get("face_area", True)), n_id=spec.get("n_id"),
                                cache_dir=spec.get("cache_dir"))
    raise MissingWeightsError(f"unknown morphable model {name!r}; expected 'procedural' or 'ict'")


def build_renderer(model, image_size: int, render: Mapping[str, Any] | None) -> FaceRenderer:
    """:class:`FaceRenderer` with the face world's camera: perspective ``fov_degrees`` framing the mean face
    with ``margin``, ``background`` RGB (the settings of :class:`facegen.data.synthetic.RenderSettings`)."""
    render = {**DEFAULT_RENDER, **dict(render or {})}
    camera = PerspectiveCamera.framing(model.mean_shape, fov_degrees=float(render["fov_degrees"]),
                                       margin=float(render["margin"]))
    return FaceRenderer(model, int(image_size), camera, tuple(float(c) for c in render["background"]))


def load_landmark_model(path: str | None):
    """The landmark model of ``landmark_model_path`` (a :mod:`facegen.models.face_regressor` file), or ``None``.

    ``None`` logs one line: training then runs without the landmark loss.

    Raises:
        MissingWeightsError: the path is set but absent.
    """
    if path in (None, "", "null"):
        log.info("landmark_model_path is not set: no landmark loss (photometric loss and regulariser only)")
        return None
    if not Path(path).expanduser().is_file():
        raise MissingWeightsError(f"landmark_model_path {path} does not exist; expected a face-regressor file "
                                  "(facegen.models.face_regressor.save_face_regressor) or null")

    return load_face_regressor(Path(path).expanduser()).eval().requires_grad_(False)


def load_frozen_generator(path: str | None, generator_kwargs: Mapping[str, Any] | None = None) -> Generator:
    """``G`` from ``path`` (:func:`~facegen.models.stylegan2.formats.load_generator`) or, with
    ``generator_kwargs``, the bare architecture (weights then come from a checkpoint's state dict). Eval mode,
    no gradients.

    Raises:
        MissingWeightsError: neither is given or the file is absent.
    """
    if generator_kwargs is not None:
        G = Generator(**dict(generator_kwargs))
    else:
        if path in (None, "", "null") or not Path(str(path)).expanduser().is_file():
            raise MissingWeightsError(f"generator_path {path!r} does not exist; expected a StyleGAN2 checkpoint "
                                      "(facegen .ckpt, rosinality .pt or NVlabs .pkl)")
        G, _ = load_generator(Path(str(path)).expanduser())
    if G.c_dim:
        raise CheckpointError(f"{path}: conditional generator (c_dim={G.c_dim}); StyleRig needs an unconditional one")
    return G.eval().requires_grad_(False)


class _FrozenGeneratorModule(LightningModule):
    """Shared parts: the frozen generator, the morphable model and renderer, the landmark model."""

    frozen_names: tuple[str, ...] = ("G",)

    def _in_eval_mode(self, evaluate, datamodule, split: str):
        """``evaluate(self, datamodule, split)`` with the module in eval mode, its mode restored after."""
        was_training = self.training
        self.eval()
        try:
            return evaluate(self, datamodule, split)
        finally:
            self.train(was_training)

    def _setup_common(self, generator_path, img_resolution, num_ws, w_dim, render, morphable, landmark_model_path,
                      generator_kwargs) -> None:
        self.G = load_frozen_generator(generator_path, generator_kwargs)
        if (self.G.img_resolution, self.G.num_ws, self.G.w_dim) != (int(img_resolution), int(num_ws), int(w_dim)):
            raise CheckpointError(f"{generator_path}: generator is {self.G.img_resolution} px with W+ "
                                  f"[{self.G.num_ws}, {self.G.w_dim}], the data says {img_resolution} px, "
                                  f"[{num_ws}, {w_dim}]")
        self.face_model = build_morphable(morphable)
        self.renderer = build_renderer(self.face_model, self.G.img_resolution, render)
        self.layout = ParamLayout.from_model(self.face_model)
        # the landmark model is a separate file, not part of this module's state (kept out of state_dict)
        self.__dict__["landmark_model"] = load_landmark_model(landmark_model_path)

    def train(self, mode: bool = True):
        """Train mode for the trainable parts; the frozen networks stay in eval mode."""
        super().train(mode)
        for name in self.frozen_names:
            getattr(self, name).eval()
        return self

    def generator_kwargs(self) -> dict:
        return dict(self.G.init_kwargs)

    def generator_fingerprint(self) -> float:
        """Sum of ``|weights|`` of ``G`` (float64): tells whether two runs rig the same generator."""
        return float(sum(p.detach().double().abs().sum() for p in self.G.parameters()))

    @torch.no_grad()
    def synthesize(self, w_plus: torch.Tensor) -> torch.Tensor:
        """``G.synthesis(w_plus)`` with constant noise: ``[B, 3, R, R]`` in [-1, 1]."""
        return self.G.synthesis(w_plus, noise_mode="const").clamp(-1, 1)

    def batch_images(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The batch's ``G(w)`` (cached ``image`` or synthesised), ``[B, 3, R, R]`` in [-1, 1]."""
        image = batch.get("image")
        return image if image is not None else self.synthesize(batch["w_plus"])

    @torch.no_grad()
    def detect_landmarks(self, images: torch.Tensor) -> torch.Tensor | None:
        """``[B, 68, 2]`` pixels from the landmark model on ``images`` in [-1, 1], or ``None`` without one."""
        model = self.__dict__.get("landmark_model")
        if model is None:
            return None
        model.to(images.device)
        return model.predict(images)["landmarks"].to(images.dtype)

    def _check_w(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        w = batch["w_plus"]
        if w.ndim != 3 or tuple(w.shape[1:]) != (self.G.num_ws, self.G.w_dim):
            raise StyleGANInputError(f"batch['w_plus'] must be [B, {self.G.num_ws}, {self.G.w_dim}], "
                                     f"got {list(w.shape)}")
        return w

    def _pictures(self, key: str, images) -> list:
        """Write pictures through :func:`facegen.reporting.log_images` when attached to a trainer."""
        if self._trainer is None:
            log.info("%s: not attached to a trainer, pictures not written", key)
            return []

        return log_images(self.trainer, key, images)


class DFR(_FrozenGeneratorModule):
    """Train StyleRig's DFR network ``F`` on images of a frozen generator (``model=dfr``).

    Args:
        generator_path, img_resolution, num_ws, w_dim, render: from ``LatentDataModule.model_kwargs()``.
        morphable: :func:`build_morphable` spec (default the procedural face).
        landmark_model_path: face-regressor file for landmarks on ``G(w)``; ``None`` = no landmark loss.
        hidden, output_scale, expression_bounds: :class:`DFRNetwork` (bounds ``[0, 1]`` for blendshape rigs).
        lambda_land: landmark weight in ``L_render``; lambda_reg: weight of the regulariser;
        w_id, w_exp, w_alb: regulariser weights per coefficient group.
        lr: Adam learning rate.
        eval_projection_steps, eval_truth_batch: the ground-truth evaluation (:func:`evaluate_dfr`).
        picture_count: (image, reconstruction) pairs in the validation pictures.
        generator_kwargs: set by :meth:`from_checkpoint` (the generator's architecture; weights from the checkpoint).
    """

    def __init__(self, generator_path: str | None = None, img_resolution: int = 64, num_ws: int = 10,
                 w_dim: int = 512, render: Mapping[str, Any] | None = None, morphable: Mapping[str, Any] | None = None,
                 landmark_model_path: str | None = None, hidden: Sequence[int] = (1024, 512),
                 output_scale: Mapping[str, float] | None = None,
                 expression_bounds: Sequence[float] | None = (0.0, 1.0), lambda_land: float = 100.0,
                 lambda_reg: float = 1e-3, w_id: float = 1.0, w_exp: float = 1.0, w_alb: float = 1.0,
                 lr: float = 1e-4, eval_projection_steps: int = 200, eval_truth_batch: int = 16,
                 picture_count: int = 8, generator_kwargs: Mapping[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["generator_kwargs"])
        self._setup_common(generator_path, img_resolution, num_ws, w_dim, render, morphable, landmark_model_path,
                           generator_kwargs)
        self.dfr = DFRNetwork(self.G.num_ws, self.G.w_dim, self.layout.n_id, self.layout.n_exp, self.layout.n_alb,
                              hidden, output_scale, expression_bounds)
        self.dfr.w_avg.copy_(self.G.mapping.w_avg)

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        """``F(w)``: ``[B, num_ws, w_dim]`` -> ``p [B, P]``."""
        return self.dfr(w_plus)

    def losses(self, w_plus: torch.Tensor, images: torch.Tensor, landmarks: torch.Tensor | None = None
               ) -> dict[str, torch.Tensor]:
        """``L_F = L_render(I_w, F(w)) + lambda_reg L_reg(F(w))`` (batch means) and its terms.

        ``images [B, 3, R, R]`` in [-1, 1]; ``landmarks [B, 68, 2]`` pixels or ``None``.
        """
        hp = self.hparams
        p = self.dfr(w_plus)
        rl = render_loss(self.renderer, (images + 1) / 2, p, landmarks, hp.lambda_land)
        reg = statistical_regulariser(p, self.layout, hp.w_id, hp.w_exp, hp.w_alb)
        total = rl.total + hp.lambda_reg * reg
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
            n = min(self.hparams.picture_count, w.shape[0])
            self._pictures("val/dfr_reconstruction",
                           [pair_rows(images[:n], out["rendering"].image[:n] * 2 - 1)])

    def configure_optimizers(self):
        return torch.optim.Adam(self.dfr.parameters(), lr=self.hparams.lr)

    def evaluate_run(self, datamodule, split: str = "test") -> dict[str, list[dict[str, Any]]]:
        """DFR tables on ``split`` and the ground-truth set (:func:`.evaluation.evaluate_dfr`)."""
        return self._in_eval_mode(evaluate_dfr, datamodule, split)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[_STATE_KEY] = {"generator_kwargs": self.generator_kwargs(), "dfr_config": self.dfr.config(),
                                  "generator_fingerprint": self.generator_fingerprint()}

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: Any = "cpu") -> DFR:
        """Rebuild a trained DFR module from its Lightning checkpoint alone (generator included). Eval mode.

        Raises:
            CheckpointError: not a DFR checkpoint, or weights that do not fit.
        """
        checkpoint = _load_checkpoint(path, map_location)
        hp = dict(checkpoint["hyper_parameters"])
        hp.pop("generator_kwargs", None)
        hp["landmark_model_path"] = _existing(hp.get("landmark_model_path"))
        model = cls(**hp, generator_kwargs=checkpoint[_STATE_KEY]["generator_kwargs"])
        _load_state(model, checkpoint, path)
        return model.eval()


class StyleRig(_FrozenGeneratorModule):
    """Train RigNets on a frozen generator and a frozen, trained DFR (``model=stylerig``).

    Args:
        generator_path, img_resolution, num_ws, w_dim, render: from ``LatentDataModule.model_kwargs()``.
        dfr_path: checkpoint of a trained :class:`DFR` (``runs/dfr/<time>/checkpoints/last.ckpt``); its
            morphable model and camera are used. ``None``: an untrained DFR (smoke tests only; one warning).
        morphable: used only when ``dfr_path`` is ``None``.
        landmark_model_path: face-regressor file for landmarks of ``I_v``, ``I_w``; ``None`` = none.
        controls: RigNets to train (``pose``, ``expression``, ``illumination``; ``all`` = one joint rig).
        control_layers: W+ layers per control (:func:`~facegen.models.stylerig.rignet.parse_layers` specs).
        latent_dim, decoder_hidden: RigNet sizes (``l_i`` is 32 in the paper).
        w_rec, w_edit, w_consist: weights of ``L_rec``, ``L_edit``, ``L_consist``. The paper uses 1, 1, 1
            with ``L_photo`` summed over pixels; our ``L_photo`` is a mean over face pixels, so the render terms
            get 300 (at 1:1:1 the RigNets stay at the identity edit; measured in experiments/stylerig/README.md).
        lambda_land: landmark weight inside ``L_render``.
        lr: Adam learning rate.
        eval_pairs, grid_size, sweep_latents, sweep_steps: evaluation sizes (:func:`evaluate_stylerig`).
        generator_kwargs, dfr_config: set by :meth:`from_checkpoint`.
    """

    frozen_names = ("G", "dfr")

    def __init__(self, generator_path: str | None = None, img_resolution: int = 64, num_ws: int = 10,
                 w_dim: int = 512, render: Mapping[str, Any] | None = None, dfr_path: str | None = None,
                 morphable: Mapping[str, Any] | None = None, landmark_model_path: str | None = None,
                 controls: Sequence[str] = ("pose", "expression", "illumination"),
                 control_layers: Mapping[str, Any] | None = None, latent_dim: int = 32,
                 decoder_hidden: int | None = None, w_rec: float = 1.0, w_edit: float = 300.0,
                 w_consist: float = 300.0, lambda_land: float = 100.0, lr: float = 1e-3, eval_pairs: int = 64,
                 grid_size: int = 4, sweep_latents: int = 3, sweep_steps: int = 7,
                 generator_kwargs: Mapping[str, Any] | None = None, dfr_config: Mapping[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["generator_kwargs", "dfr_config"])
        trained = None                                   # (network config, state, generator kwargs) of dfr_path
        if dfr_config is not None:                       # from_checkpoint: architecture only, weights follow
            morphable, render = dfr_config["morphable"], dfr_config["render"]
            network = dfr_config["network"]
        elif dfr_path not in (None, "", "null"):
            trained = read_dfr_checkpoint(dfr_path)
            morphable, render = trained["hyper_parameters"].get("morphable"), trained["hyper_parameters"].get("render")
            network = trained["network"]
        else:
            log.warning("dfr_path is not set: StyleRig uses an untrained DFR (smoke test only); train one with "
                        "`python -m facegen.train model=dfr`")
            network = None
        self._setup_common(generator_path, img_resolution, num_ws, w_dim, render, morphable, landmark_model_path,
                           generator_kwargs)
        self.morphable_spec = None if morphable is None else dict(morphable)
        self.render_spec = None if render is None else dict(render)
        if network is None:
            network = {"num_ws": self.G.num_ws, "w_dim": self.G.w_dim, "n_id": self.layout.n_id,
                       "n_exp": self.layout.n_exp, "n_alb": self.layout.n_alb}
        self.dfr = DFRNetwork(**network)
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
        self.controls = list(controls)
        self.rignets = build_rignets(self.G.num_ws, self.G.w_dim, self.layout, self.controls, control_layers,
                                     latent_dim, decoder_hidden)

    def edit(self, w_plus: torch.Tensor, p: torch.Tensor, control: str) -> torch.Tensor:
        """``w_hat = RigNet_control(w, p)``: ``[B, num_ws, w_dim]`` for target parameters ``p [B, P]``."""
        return self.rignets[control](w_plus, p)

    def losses(self, w_plus: torch.Tensor, images: torch.Tensor, control: str,
               landmarks: torch.Tensor | None = None, v_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``L_total = w_rec L_rec + w_edit L_edit + w_consist L_consist`` for pairs ``(w, v)``.

        ``v`` is ``w_plus[v_index]`` (default: the batch rolled by one), ``I_v``/landmarks likewise.
        ``images [B, 3, R, R]`` in [-1, 1]; ``landmarks [B, 68, 2]`` or ``None``.
        """
        hp = self.hparams
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
        edit = edit_loss(self.renderer, image_v, p_v, p_hat, rig.param_mask, land_v, hp.lambda_land)
        consist = consistency_loss(self.renderer, image_w, p_w, p_hat, rig.param_mask, landmarks, hp.lambda_land)
        total = hp.w_rec * rec + hp.w_edit * edit.total + hp.w_consist * consist.total
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
        return torch.optim.Adam(self.rignets.parameters(), lr=self.hparams.lr)

    def evaluate_run(self, datamodule, split: str = "test") -> dict[str, list[dict[str, Any]]]:
        """Edit accuracy, preservation and identity tables, edit grids and sweeps
        (:func:`facegen.models.stylerig.evaluation.evaluate_stylerig`)."""
        return self._in_eval_mode(evaluate_stylerig, datamodule, split)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[_STATE_KEY] = {"generator_kwargs": self.generator_kwargs(),
                                  "dfr_config": {"network": self.dfr.config(), "morphable": self.morphable_spec,
                                                 "render": self.render_spec}}

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: Any = "cpu") -> StyleRig:
        """Rebuild a trained StyleRig from its checkpoint alone (generator and DFR included). Eval mode.

        Raises:
            CheckpointError: not a StyleRig checkpoint, or weights that do not fit.
        """
        checkpoint = _load_checkpoint(path, map_location)
        hp = dict(checkpoint["hyper_parameters"])
        for key in ("generator_kwargs", "dfr_config"):
            hp.pop(key, None)
        hp["landmark_model_path"] = _existing(hp.get("landmark_model_path"))
        state = checkpoint[_STATE_KEY]
        model = cls(**hp, generator_kwargs=state["generator_kwargs"], dfr_config=state["dfr_config"])
        _load_state(model, checkpoint, path)
        return model.eval()


def read_dfr_checkpoint(path: str | Path) -> dict:
    """The DFR network of a :class:`DFR` checkpoint without building the module:
    ``dict(network (DFRNetwork kwargs), state (its state dict), hyper_parameters, generator_kwargs,
    generator_fingerprint)``.

    Raises:
        MissingWeightsError: the file does not exist.
        CheckpointError: not a DFR checkpoint.
    """
    if not Path(path).expanduser().is_file():
        raise MissingWeightsError(f"dfr_path {path} does not exist; train one with "
                                  "`python -m facegen.train model=dfr` and pass its checkpoints/last.ckpt")
    checkpoint = _load_checkpoint(Path(path).expanduser(), "cpu")
    state = checkpoint[_STATE_KEY]
    if "dfr_config" not in state or "network" in state["dfr_config"]:
        raise CheckpointError(f"{path}: not a DFR checkpoint (a StyleRig one?); expected runs/dfr/.../last.ckpt")
    weights = {k[len("dfr."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("dfr.")}
    return {"network": state["dfr_config"], "state": weights, "hyper_parameters": dict(checkpoint["hyper_parameters"]),
            "generator_kwargs": state["generator_kwargs"], "generator_fingerprint": state.get("generator_fingerprint")}


def _existing(path: str | None) -> str | None:
    """``path`` if the file still exists, else ``None`` (a checkpoint must load without its landmark model)."""
    if path in (None, "", "null") or not Path(str(path)).expanduser().is_file():
        return None
    return str(path)


def _load_checkpoint(path: str | Path, map_location: Any) -> dict:
    checkpoint = load(path, map_location=map_location)
    missing = [k for k in ("state_dict", "hyper_parameters", _STATE_KEY) if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a StyleRig/DFR checkpoint, missing keys {missing}")
    return checkpoint


def _load_state(model: LightningModule, checkpoint: dict, path: str | Path) -> None:
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not match the stored hyperparameters: {error}") from error
