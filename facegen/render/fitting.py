"""Analysis-by-synthesis: fit a morphable face's parameter vector to an image and its 68 landmarks.

The energy is that of Deep3DFaceRecon (Deng et al. 2019, eqs. 2-6) optimised per image instead of
regressed by a network, as in MoFA's model-based energy (Tewari et al. 2017, eq. 7):

``E(p) = w_photo * sum_i M_i ||I_i - R(p)_i||_2 / sum_i M_i + w_landmark * mean_k ||q_k - Pi(p)_k||^2 / S^2
         + w_id ||alpha||^2 + w_exp ||delta||^2 + w_alb ||beta||^2``

with ``M`` the rendered face mask (times the target mask when given), ``q`` the target landmarks in
pixels and ``S`` the image size. Coarse to fine, as in Face2Face (Thies et al. 2016, sec. 5: data-parallel
Gauss-Newton on the same kind of energy):

1. ``pose``: landmarks only, Adam on rotation and translation (no rendering);
2. ``landmarks``: landmarks only, Adam on pose, identity and expression;
3. ``colour``: the full energy, Adam on albedo and SH light only (geometry fixed);
4. (optional ``photo``: the full energy, Adam on everything);
5. ``lm``: Levenberg-Marquardt (Marquardt 1963) on the squared-error form of the energy
   (``sum_i M_i ||I_i - R(p)_i||^2 / sum_i M_i``), Jacobian by forward-mode AD for fixed visibility,
   expression controls kept in ``exp_bounds`` by an active set, and the priors shrunk by continuation
   from ``lm_prior_start x lm_w_*`` to ``lm_w_*``: strong priors first keep the early Gauss-Newton steps
   near the mean face, weak priors at the end let the data decide.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from facegen.render.camera import RenderInputError
from facegen.render.face import FaceRenderer, FaceRendering
from facegen.shapes import assert_shape


@dataclass
class FitConfig:
    """Weights, steps and learning rates of :func:`fit_face` (learning rates per parameter group)."""

    pose_steps: int = 60          # stage 1: landmarks -> rotation, translation
    landmark_steps: int = 120     # stage 2: landmarks -> + identity, expression
    colour_steps: int = 60        # stage 3: full energy -> albedo, sh_coeffs only (geometry fixed)
    photo_steps: int = 0          # stage 3b: full energy, Adam on everything (the former default: 250)
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
    lm_steps: int = 25            # stage 4: Levenberg-Marquardt on the squared-error energy (0 = off)
    lm_damping: float = 1e-3      # initial Marquardt damping (relative to diag(J^T J))
    lm_w_id: float = 1e-7         # stage-4 priors (squared norm) at the end: small, the data decide
    lm_w_exp: float = 1e-7
    lm_w_alb: float = 1e-7
    lm_prior_start: float = 1e4   # stage-4 priors start at lm_prior_start x lm_w_* (1e-3) and shrink by
    lm_prior_decay: float = 0.3   # lm_prior_decay per iteration down to 1 x (continuation)
    lm_tol: float = 1e-3          # stop when an iteration lowers the energy by less than this fraction
    lm_erode: int = 1             # pixels of the face mask's border left out of stage 4 (silhouette)
    lm_huber: float = 0.05        # Huber threshold on the per-pixel RGB error in stage 4 (0 = squares)


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
    assert_shape(image, ["B", 3, h, w], "image", error=RenderInputError,
                 hint="the target in [0, 1] at the renderer's image size")
    b = image.shape[0]
    assert_shape(landmarks, [b, 68, 2], "landmarks", error=RenderInputError,
                 hint="68 target landmarks per image, pixels")
    if mask is not None:
        assert_shape(mask, [b, 1, h, w], "mask", error=RenderInputError, hint="one face mask per image")


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
              ("colour", config.colour_steps, ["albedo", "sh_coeffs"]),
              ("photo", config.photo_steps, names)]
    for stage, steps, free in stages:
        if steps <= 0:
            continue
        optimiser = torch.optim.Adam([{"params": [tensors[n]], "lr": lr[n]} for n in free])
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, eta_min=0.0)
        for _ in range(steps):
            optimiser.zero_grad(set_to_none=True)
            if stage in ("colour", "photo"):
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
    p = vector().detach()
    if config.lm_steps > 0:
        p = torch.cat([_levenberg_marquardt(renderer, image[i:i + 1], landmarks[i:i + 1],
                                            None if mask is None else mask[i:i + 1], p[i:i + 1], config, history)
                       for i in range(b)])
    with torch.no_grad():
        rendering = renderer(p)
    return FitResult(params=p, rendering=rendering, history=history, seconds=time.perf_counter() - start)


def _levenberg_marquardt(renderer: FaceRenderer, image: torch.Tensor, landmarks: torch.Tensor,
                         mask: torch.Tensor | None, p: torch.Tensor, config: FitConfig,
                         history: list[dict]) -> torch.Tensor:
    """Refine one fit ``p [1, P]`` by Levenberg-Marquardt on the least-squares energy.

    Residuals: ``sqrt(w_photo / n) M (R(p) - I)`` over the ``n`` pixels of the face mask ``M`` (fixed at
    each linearisation point), ``sqrt(w_landmark / 68) (Pi(p) - q) / S`` and ``sqrt(w) x`` priors on
    identity, expression and albedo (``lm_w_*``). The Jacobian is exact for fixed visibility
    (forward-mode AD, :func:`torch.func.jacfwd`); the damped normal equations
    ``(J^T J + lambda diag(J^T J)) dp = -J^T r`` (Marquardt 1963) give the step; expression stays in
    ``exp_bounds`` (active set: a control at a bound whose step points outwards is held there and the
    system re-solved for the rest). A step is kept only when the energy falls.
    """
    layout = renderer.layout
    size = float(max(image.shape[-2:]))
    prior = torch.zeros(layout.dim, dtype=p.dtype, device=p.device)
    prior[layout.identity] = config.lm_w_id
    prior[layout.expression] = config.lm_w_exp
    prior[layout.albedo] = config.lm_w_alb
    scale = [config.lm_prior_start]

    def residuals(q: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        prior_sqrt = (prior * scale[0]).sqrt()
        out = renderer(q)
        photo = ((out.image - image) * weight).flatten()
        lm = (out.landmarks - landmarks).flatten() * math.sqrt(config.w_landmark / 68.0) / size
        return torch.cat([photo, lm, prior_sqrt * q[0]])

    def pixel_weight(q: torch.Tensor) -> torch.Tensor:
        """sqrt of the IRLS weights: eroded face mask, Huber weight ``min(1, delta / e)`` per pixel."""
        with torch.no_grad():
            out = renderer(q)
            m = out.mask if mask is None else out.mask * mask
            if config.lm_erode > 0:    # drop pixels next to the silhouette (visibility flips, no gradient)
                k = 2 * config.lm_erode + 1
                m = 1.0 - torch.nn.functional.max_pool2d(1.0 - m, k, stride=1, padding=config.lm_erode)
            e = (out.image - image).pow(2).sum(1, keepdim=True).sqrt()
            huber = (config.lm_huber / e.clamp(min=1e-12)).clamp(max=1.0) if config.lm_huber > 0 else 1.0
            return (m * huber).sqrt() * math.sqrt(config.w_photo) / m.sum().clamp(min=1.0).sqrt()

    def energy(q: torch.Tensor) -> float:
        """The robust (Huber) energy at ``q``, the quantity Levenberg-Marquardt steps must lower."""
        with torch.no_grad():
            weight = pixel_weight(q)
            r = residuals(q, weight)
            n_photo = image.numel()
            if config.lm_huber <= 0:
                return r.pow(2).sum().item()
            out = renderer(q)
            e = (out.image - image).pow(2).sum(1, keepdim=True).sqrt()
            d = config.lm_huber
            rho = torch.where(e < d, e.pow(2), 2 * d * e - d * d)
            huber = (d / e.clamp(min=1e-12)).clamp(max=1.0)
            photo = (weight.pow(2) / huber * rho).sum()          # weight^2 = c^2 m huber -> c^2 m rho
            return (photo + r[n_photo:].pow(2).sum()).item()

    damping = config.lm_damping
    current = energy(p)
    bounds = config.exp_bounds
    for _ in range(config.lm_steps):
        if scale[0] > 1.0:
            scale[0] = max(1.0, scale[0] * config.lm_prior_decay)
            current = energy(p)
        before = current
        weight = pixel_weight(p)
        jac = torch.func.jacfwd(lambda q: residuals(q, weight))(p)[:, 0]          # [N, P]
        with torch.no_grad():
            r = residuals(p, weight)
            jtj = jac.T @ jac
            jtr = jac.T @ r
        accepted = False
        exp_index = torch.arange(layout.dim, device=p.device)[layout.expression]
        for _ in range(6):
            a = jtj + damping * torch.diag(jtj.diagonal().clamp(min=1e-9))
            step = torch.linalg.solve(a, -jtr)
            if bounds is not None:
                # Active set: controls at a bound whose step points outwards stay there; re-solve for the rest.
                value_now, move = p[0, exp_index], step[exp_index]
                blocked = exp_index[((value_now <= bounds[0] + 1e-6) & (move < 0))
                                    | ((value_now >= bounds[1] - 1e-6) & (move > 0))]
                if len(blocked):
                    free = torch.ones(layout.dim, dtype=torch.bool, device=p.device)
                    free[blocked] = False
                    step = torch.zeros_like(step)
                    step[free] = torch.linalg.solve(a[free][:, free], -jtr[free])
            trial = p + step[None]
            if bounds is not None:
                trial[:, layout.expression] = trial[:, layout.expression].clamp(*bounds)
            value = energy(trial)
            if value < current:
                p, current, damping, accepted = trial, value, max(damping / 3.0, 1e-7), True
                break
            damping *= 4.0
        history.append({"stage": "lm", "loss": current, "photo": float("nan"), "landmark": float("nan"),
                        "damping": damping})
        if scale[0] <= 1.0 and (not accepted or before - current < config.lm_tol * before):
            break
    return p.detach()
