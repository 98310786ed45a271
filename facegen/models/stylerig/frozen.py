"""What StyleRig's two LightningModules share: the frozen generator, the face world, the landmark model, checkpoints.

Both :class:`~facegen.models.stylerig.dfr_module.DFR` and :class:`~facegen.models.stylerig.stylerig_module.StyleRig`
hold a frozen StyleGAN2 generator ``G`` loaded from ``generator_path`` (facegen ``.ckpt``, rosinality ``.pt`` or
NVlabs ``.pkl``, :func:`facegen.models.stylegan2.formats.load_generator`), the morphable model and the
differentiable renderer of the face world (camera ``render`` from the data), and optionally the face regressor
that detects 68 landmarks on ``G(w)`` (``landmark_model_path``). Their checkpoints keep ``G``'s architecture
(and weights in the state dict) under ``checkpoint["facegen_stylerig"]``, so
:meth:`FrozenGeneratorModule.from_checkpoint` needs neither the generator file nor the landmark model.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from facegen.config.blocks import block
from facegen.errors import CheckpointError, MissingWeightsError, StyleGANInputError
from facegen.models.base import FacegenModule
from facegen.models.face_regressor.files import load_face_regressor
from facegen.models.stylegan2.formats import load_generator
from facegen.models.stylegan2.networks import Generator
from facegen.morphable import ProceduralFaceModel, load_ict_facekit
from facegen.morphable.params import ParamLayout
from facegen.render import FaceRenderer, PerspectiveCamera
from facegen.reporting import log_images
from facegen.shapes import assert_shape

log = logging.getLogger(__name__)

#: checkpoint entry with the generator's architecture and the DFR's network config
STATE_KEY = "facegen_stylerig"
#: the face world's camera (:class:`facegen.data.synthetic.RenderSettings` defaults)
DEFAULT_RENDER = {"fov_degrees": 12.0, "margin": 1.25, "background": [0.0, 0.0, 0.0]}


@dataclass(frozen=True)
class MorphableSpec:
    """The morphable model the DFR predicts parameters of (``model.morphable``).

    Attributes:
        name: ``procedural`` (:class:`facegen.morphable.ProceduralFaceModel`, the face world's model) or ``ict``
            (ICT-FaceKit, :func:`facegen.morphable.load_ict_facekit`).
        seed: seed of the procedural model (its identity/expression bases are drawn from it).
        root: ICT-FaceKit folder (required for ``ict``).
        n_id: ICT identity components kept (``None`` = all).
        face_area: ICT: only the face area of the head mesh.
        cache_dir: ICT: where the parsed meshes are cached (``None`` = no cache).
    """

    name: Literal["procedural", "ict"] = "procedural"
    seed: int = 0
    root: str | None = None
    n_id: int | None = None
    face_area: bool = True
    cache_dir: str | None = None


def build_morphable(spec: Mapping[str, Any] | MorphableSpec | None):
    """The morphable model of a :class:`MorphableSpec` block (``None`` = the procedural face, seed 0).

    Raises:
        ConfigError: an unknown key or name (``model.morphable.<key>``).
        MissingWeightsError: ``ict`` without ``root``.
    """
    spec = block(MorphableSpec, spec, "model.morphable")
    if spec.name == "procedural":
        return ProceduralFaceModel(seed=spec.seed)
    if not spec.root:
        raise MissingWeightsError("morphable.name=ict needs morphable.root (the ICT-FaceKit folder)")
    return load_ict_facekit(spec.root, face_area=spec.face_area, n_id=spec.n_id, cache_dir=spec.cache_dir)


def build_renderer(model, image_size: int, render: Mapping[str, Any] | None) -> FaceRenderer:
    """:class:`FaceRenderer` with the face world's camera: perspective ``fov_degrees`` framing the mean face
    with ``margin``, ``background`` RGB in [0, 1] (the settings of :class:`facegen.data.synthetic.RenderSettings`);
    ``image_size`` in pixels."""
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
        CheckpointError: a conditional generator.
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


def existing_file(path: str | None) -> str | None:
    """``path`` if the file still exists, else ``None`` (a checkpoint must load without its landmark model)."""
    if path in (None, "", "null") or not Path(str(path)).expanduser().is_file():
        return None
    return str(path)


def stylerig_state(checkpoint: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``checkpoint["facegen_stylerig"]`` (generator architecture, DFR config).

    Raises:
        CheckpointError: the entry is missing (not a StyleRig/DFR checkpoint; names ``source``).
    """
    missing = [k for k in ("state_dict", "hyper_parameters", STATE_KEY) if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{source}: not a StyleRig/DFR checkpoint, missing keys {missing}")
    return dict(checkpoint[STATE_KEY])


class FrozenGeneratorModule(FacegenModule):
    """Shared parts of DFR and StyleRig: the frozen generator, the morphable model and renderer, the landmark
    model, and re-creation from a checkpoint alone (:meth:`from_checkpoint`)."""

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
        """``G``'s constructor arguments (stored in checkpoints)."""
        return dict(self.G.init_kwargs)

    def generator_fingerprint(self) -> float:
        """Sum of ``|weights|`` of ``G`` (float64): tells whether two runs rig the same generator."""
        return float(sum(p.detach().double().abs().sum() for p in self.G.parameters()))

    @torch.no_grad()
    def synthesize(self, w_plus: torch.Tensor) -> torch.Tensor:
        """``G.synthesis(w_plus)`` with constant noise: ``[B, num_ws, w_dim]`` -> ``[B, 3, R, R]`` in [-1, 1]."""
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
        """``batch["w_plus"]`` after the shape check (``[B, num_ws, w_dim]``; StyleGANInputError otherwise)."""
        w = batch["w_plus"]
        assert_shape(w, ["B", self.G.num_ws, self.G.w_dim], "batch['w_plus']", error=StyleGANInputError,
                     hint="W+ latents of the frozen generator (LatentDataModule)")
        return w

    def _pictures(self, key: str, images) -> list:
        """Write pictures through :func:`facegen.reporting.log_images` when attached to a trainer."""
        if self._trainer is None:
            log.info("%s: not attached to a trainer, pictures not written", key)
            return []
        return log_images(self.trainer, key, images)

    # ---------------------------------------------------------------- checkpoints
    @classmethod
    def checkpoint_kwargs(cls, checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
        """The generator's architecture from ``checkpoint["facegen_stylerig"]`` (its weights are in the state
        dict) and ``landmark_model_path`` only if that file still exists.

        Raises:
            CheckpointError: no ``facegen_stylerig`` entry.
        """
        state = stylerig_state(checkpoint, source)
        path = dict(checkpoint["hyper_parameters"]).get("landmark_model_path")
        return {"generator_kwargs": state["generator_kwargs"], "landmark_model_path": existing_file(path)}

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: Any = "cpu", **overrides: Any):
        """Rebuild the trained module from its Lightning checkpoint alone (generator included), in eval mode
        (:meth:`facegen.models.base.FacegenModule.from_checkpoint`; old flat hyper-parameters are upgraded).

        Raises:
            CheckpointError: unreadable, not a checkpoint of this class, or weights that do not fit.
        """
        return super().from_checkpoint(path, map_location, **overrides).eval()
