"""Analysis-by-synthesis: fit a morphable face's parameter vector to an image and its 68 landmarks.

The energy is that of Deep3DFaceRecon (Deng et al. 2019, eqs. 2-6) optimised per image with Adam
instead of regressed by a network, as in MoFA's model-based energy (Tewari et al. 2017, eq. 7):

``E(p) = w_photo * sum_i M_i ||I_i - R(p)_i||_2 / sum_i M_i + w_landmark * mean_k ||q_k - Pi(p)_k||^2 / S^2
         + w_id ||alpha||^2 + w_exp ||delta||^2 + w_alb ||beta||^2``

with ``M`` the rendered face mask (times the target mask when given), ``q`` the target landmarks in
pixels and ``S`` the image size. Coarse to fine: first landmarks only (pose, then shape and expression
as well; no rendering needed), then the full energy including albedo and lighting.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from facegen.render.camera import RenderInputError
from facegen.render.face import FaceRenderer, FaceRendering


@dataclass
class FitConfig:
    """Weights, steps and learning rates of :func:`fit_face` (learning rates per parameter group)."""

    pose_steps: int = 60          # stage 1: landmarks -> rotation, translation
    landmark_steps: int = 120     # stage 2: landmarks -> + identity, expression
    photo_steps: int = 250        # stage 3: full energy -> + albedo, sh_coeffs
    w_photo: float = 1.0
    w_landmark: float = 40.0   # ~ Deep3DFaceRecon's 1.6e-3 per px^2 at 224 px vs photo 1.92
    w_id: float = 1e-3
    w_exp: float = 1e-4
    w_exp_l1: float = 5e-4        # sparsity of expression activations (blendshape rigs are sparse)
    w_alb: float = 1e-3
    lr_rotation: float = 0.02     # radians
    lr_translation: float = 2.0   # mm
    lr_coeffs: float = 0.05       # identity / expression / albedo coefficients
    lr_sh: float = 0.02
    exp_bounds: tuple[float, float] | None = (0.0, 1.0)   # blendshape activations; None = unbounded


@dataclass
class FitResult:
    """Output of :func:`fit_face`.

    Attributes:
        params: ``[B, P]`` fitted parameter vector (detached).
        rendering: the final :class:`FaceRendering` of ``params`` (detached).
        history: one dict per step (``stage``, ``loss``, ``photo``, ``landmark`` terms).
        seconds: wall time of the fit.
    """

    params: torch.Tensor
    rendering: FaceRendering
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _check_targets(renderer: FaceRenderer, image: torch.Tensor, landmarks: torch.Tensor,
                   mask: torch.Tensor | None) -> None:
    size = renderer.image_size
    h, w = (size, size) if isinstance(size, int) else size
    b = image.shape[0]
    if image.dim() != 4 or tuple(image.shape[1:]) != (3, h, w):
        raise RenderInputError(f"target image has shape {tuple(image.shape)}; expected [B, 3, {h}, {w}] in [0, 1]")
    if tuple(landmarks.shape) != (b, 68, 2):
        raise RenderInputError(f"target landmarks have shape {tuple(landmarks.shape)}; expected [{b}, 68, 2] pixels")
    if mask is not None and tuple(mask.shape) != (b, 1, h, w):
        raise RenderInputError(f"target mask has shape {tuple(mask.shape)}; expected [{b}, 1, {h}, {w}]")


def fit_face(renderer: FaceRenderer, image: torch.Tensor, landmarks: torch.Tensor,
             mask: torch.Tensor | None = None, init: torch.Tensor | None = None,
             config: FitConfig | None = None) -> FitResult:
    """Fit ``p`` so that ``renderer(p)`` matches a target image and its landmarks.

    Args:
        renderer: the :class:`FaceRenderer` (model, camera and image size used for the target).
        image: ``[B, 3, H, W]`` target in [0, 1].
        landmarks: ``[B, 68, 2]`` target landmarks in pixels (Multi-PIE order, renderer convention).
        mask: optional ``[B, 1, H, W]`` target face/skin mask (1 = use the pixel).
        init: optional ``[B, P]`` start (``renderer.layout``); default zeros (mean face, frontal, at the origin).
        config: :class:`FitConfig`.

    Returns:
        :class:`FitResult`.

    Raises:
        RenderInputError: targets of the wrong shape.
        facegen.morphable.ModelLayoutError: ``init`` is not ``[B, P]``.
    """
    config = config or FitConfig()
    _check_targets(renderer, image, landmarks, mask)
    start = time.perf_counter()
    b = image.shape[0]
    p0 = renderer.zero_params(b) if init is None else init.detach().clone()
    tensors = {name: part.clone().requires_grad_() for name, part in renderer.layout.split(p0).items()}
    names = list(tensors)
    lr = {"identity": config.lr_coeffs, "expression": config.lr_coeffs, "albedo": config.lr_coeffs,
          "sh_coeffs": config.lr_sh, "rotation": config.lr_rotation, "translation": config.lr_translation}
    size = float(max(image.shape[-2:]))
    history: list[dict] = []

    def vector() -> torch.Tensor:
        return torch.cat([tensors[name] for name in names], dim=1)

    def regulariser() -> torch.Tensor:
        return (config.w_id * tensors["identity"].pow(2).sum(1) + config.w_exp * tensors["expression"].pow(2).sum(1)
                + config.w_alb * tensors["albedo"].pow(2).sum(1)
                + config.w_exp_l1 * tensors["expression"].abs().sum(1)).mean()

    def landmark_term(predicted: torch.Tensor) -> torch.Tensor:
        return ((predicted - landmarks).pow(2).sum(-1).mean(-1) / size ** 2).mean()

    stages = [("pose", config.pose_steps, ["rotation", "translation"]),
              ("landmarks", config.landmark_steps, ["rotation", "translation", "identity", "expression"]),
              ("photo", config.photo_steps, names)]
    for stage, steps, free in stages:
        if steps <= 0:
            continue
        optimiser = torch.optim.Adam([{"params": [tensors[n]], "lr": lr[n]} for n in free])
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, eta_min=0.0)
        for _ in range(steps):
            optimiser.zero_grad(set_to_none=True)
            if stage == "photo":
                out = renderer(vector())
                weight = out.mask if mask is None else out.mask * mask
                per_pixel = (out.image - image).pow(2).sum(1, keepdim=True).add(1e-8).sqrt()
                photo = ((per_pixel * weight).sum((1, 2, 3)) / weight.sum((1, 2, 3)).clamp(min=1.0)).mean()
                lm = landmark_term(out.landmarks)
            else:
                photo = image.new_zeros(())
                posed = renderer.posed_vertices(renderer.layout.split(vector()))
                lm = landmark_term(renderer.project(renderer.model.landmarks(posed)))
            loss = config.w_photo * photo + config.w_landmark * lm + regulariser()
            loss.backward()
            optimiser.step()
            schedule.step()
            if config.exp_bounds is not None:
                with torch.no_grad():
                    tensors["expression"].clamp_(*config.exp_bounds)      # projected gradient step
            history.append({"stage": stage, "loss": loss.item(), "photo": photo.item(), "landmark": lm.item()})
    with torch.no_grad():
        p = vector().detach()
        rendering = renderer(p)
    return FitResult(params=p, rendering=rendering, history=history, seconds=time.perf_counter() - start)
