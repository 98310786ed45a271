"""StyleRig evaluation: DFR parameter error against ground truth, RigNet edit accuracy, preservation and
identity preservation, edit grids (Tewari et al. 2020, Fig. 5/9) and one-parameter sweeps.

Parameter errors are mean absolute errors per part in the part's unit: rotation in degrees, translation
in mm, identity/expression/albedo/``sh_coeffs`` in coefficient units; ``shape_mm`` is the mean vertex
distance (mm) of the unposed meshes ``S(identity, expression)``, ``identity_mm`` that of the neutral
meshes ``S(identity, 0)``. Identity preservation on the images: dlib's identity distance
(:func:`facegen.faces.paired_identity_distances`, 128-D descriptor, < 0.6 = same person) between ``G(w)`` and the
edited ``G(w_hat)``, beside the reference ``G(w)`` vs ``G(v)`` (another face); pairs where dlib finds no face are
left out and counted (``dlib_no_face``), a cell without any pair is NaN.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from facegen.callbacks.image_grid import images_to_grid
from facegen.faces import FaceModelsMissing, paired_identity_distances
from facegen.models.stylegan2.projection import project
from facegen.models.stylerig.rignet import CONTROL_PARTS
from facegen.morphable.params import PARTS, ParamLayout

log = logging.getLogger(__name__)

UNITS = {"identity": "coeff", "expression": "coeff", "albedo": "coeff", "sh_coeffs": "coeff", "rotation": "deg",
         "translation": "mm"}


def part_errors(p_a: torch.Tensor, p_b: torch.Tensor, layout: ParamLayout) -> dict[str, torch.Tensor]:
    """Per-sample mean absolute error of each part (``[B]`` each; rotation in degrees)."""
    a, b = layout.split(p_a), layout.split(p_b)
    out = {}
    for part in PARTS:
        if a[part].shape[1] == 0:
            continue
        error = (a[part] - b[part]).abs().mean(1)
        out[part] = error * (180.0 / math.pi) if part == "rotation" else error
    return out


def shape_distance_mm(face_model, p_a: torch.Tensor, p_b: torch.Tensor, layout: ParamLayout,
                      neutral: bool = False) -> torch.Tensor:
    """``[B]`` mean vertex distance (mm) between ``S(id_a, exp_a)`` and ``S(id_b, exp_b)`` (``neutral``: exp = 0)."""
    a, b = layout.split(p_a), layout.split(p_b)
    zero = None if not neutral else a["expression"].new_zeros(a["expression"].shape)
    va = face_model.vertices(a["identity"], zero if neutral else a["expression"])
    vb = face_model.vertices(b["identity"], zero if neutral else b["expression"])
    return (va - vb).norm(dim=-1).mean(-1)


def pair_rows(top: torch.Tensor, bottom: torch.Tensor) -> np.ndarray:
    """Two rows of images ``[N, 3, H, W]`` in [-1, 1] (e.g. ``G(w)`` above its DFR reconstruction) as uint8."""
    return images_to_grid(torch.cat([top, bottom]), cols=top.shape[0])


def _mean(rows: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in rows.items()}


def dlib_identity(images_a: torch.Tensor, images_b: torch.Tensor) -> tuple[float, int]:
    """``(mean dlib identity distance over the pairs with faces or NaN, pairs without a face)`` of ``[N, C, H, W]``
    images in [-1, 1]; without dlib installed ``(NaN, N)`` and a log line saying what to install."""
    try:
        comparison = paired_identity_distances(images_a.cpu(), images_b.cpu())
    except FaceModelsMissing as error:
        log.warning("dlib identity distance not measured: %s", error)
        return float("nan"), int(images_a.shape[0])
    return comparison.mean, comparison.no_face


def _batched(fn, *tensors: torch.Tensor, batch: int = 16) -> torch.Tensor:
    return torch.cat([fn(*(t[i:i + batch] for t in tensors)) for i in range(0, tensors[0].shape[0], batch)])


# ---------------------------------------------------------------------------------------------------- DFR
@torch.no_grad()
def evaluate_dfr(module, datamodule, split: str = "test") -> dict[str, list[dict[str, Any]]]:
    """DFR tables: ``dfr_self_supervised`` (losses on ``split`` latents) and ``dfr_ground_truth``.

    Ground truth: ``datamodule.truth_set()`` renders faces with known parameters exactly like the face
    world; each is projected into the generator's W space (:func:`facegen.models.stylegan2.projection.project`,
    ``module.evaluation.projection_steps`` steps, weight-free L1 + MS-SSIM loss), ``F`` is applied to the
    projected latent and its parameters are compared with the truth. Rows: the DFR, the all-zero
    parameters (mean face, neutral, frontal, ambient light: the untrained DFR), and the face regressor
    run directly on the true images when ``landmark_model_path`` is set (a reference that sees the image).
    ``projection_l1`` is the mean absolute pixel difference (0-1 scale) between ``G(w_proj)`` and the truth:
    how well the generator reproduces the rendered faces; the row "best-reproduced half" keeps the faces
    whose projection error is at most the median (where the generator reproduces them).
    """
    dataset = datamodule.dataset(split)
    device = module.device
    w = dataset.w_plus.to(device)
    images = dataset.images.to(device) if dataset.images is not None else _batched(module.synthesize, w)
    terms = {"photo": [], "land": [], "reg": []}
    for i in range(0, w.shape[0], 16):
        lm = module.detect_landmarks(images[i:i + 16])
        out = module.losses(w[i:i + 16], images[i:i + 16], lm)
        for k in terms:
            terms[k].append(float(out[k]) * w[i:i + 16].shape[0])
    n = max(w.shape[0], 1)
    self_rows = [{"split": split, "n": w.shape[0], **{k: sum(v) / n for k, v in terms.items()},
                  "landmark_model": module.__dict__.get("landmark_model") is not None}]
    if w.shape[0]:
        count = min(module.evaluation.picture_count, w.shape[0])
        p = module.dfr(w[:count])
        module._pictures(f"{split}/dfr_reconstruction", [pair_rows(images[:count], module.renderer(p).image * 2 - 1)])
    tables = {"dfr_self_supervised": self_rows}

    truth = datamodule.truth_set(module.G.img_resolution) if hasattr(datamodule, "truth_set") else None
    if truth is None:
        log.info("no ground-truth faces (truth.n = 0): DFR parameter error not computed")
        return tables
    if truth["params"].shape[1] != module.layout.dim:
        log.info("ground-truth faces use the procedural model (P=%d), the DFR another (P=%d): parameter error skipped",
                 truth["params"].shape[1], module.layout.dim)
        return tables
    tables["dfr_ground_truth"] = dfr_ground_truth(module, truth)
    return tables


def dfr_ground_truth(module, truth: dict) -> list[dict[str, Any]]:
    """Rows of :func:`evaluate_dfr`'s ``dfr_ground_truth`` table for ``truth`` (see there)."""
    device = module.device
    targets = truth["images"].to(device)
    gt = truth["params"].to(device)
    gt_landmarks = truth["landmarks"].to(device)
    steps = int(module.evaluation.projection_steps)
    with torch.enable_grad():
        result = project(module.G, targets, latent_space="w", num_steps=steps, w_avg_samples=2000, seed=0)
    w_proj = result.w_plus.to(device)
    per_image_l1 = ((result.images.clamp(-1, 1) - targets).abs() / 2).mean((1, 2, 3))       # [N], 0-1 scale
    best = per_image_l1 <= per_image_l1.median()          # the half the generator reproduces best
    with torch.no_grad():
        dfr = module.dfr(w_proj)
        predictions = [("dfr(projected w)", dfr, slice(None)), ("dfr(projected w), best-reproduced half", dfr, best),
                       ("zero parameters", torch.zeros_like(gt), slice(None))]
        regressor = module.__dict__.get("landmark_model")
        if regressor is not None:
            predictions.append(("face regressor(true image)", regressor.to(device).predict(targets)["params"],
                                slice(None)))
        rows = []
        for name, p, keep in predictions:
            p, truth_p, truth_lm = p[keep], gt[keep], gt_landmarks[keep]
            errors = _mean(part_errors(p, truth_p, module.layout))
            rendering = module.renderer(p)
            rows.append({
                "method": name, "n": truth_p.shape[0],
                **{f"{part}_{UNITS[part]}": errors[part] for part in errors},
                "shape_mm": float(shape_distance_mm(module.face_model, p, truth_p, module.layout).mean()),
                "landmarks_px": float((rendering.landmarks - truth_lm).norm(dim=-1).mean()),
                "projection_l1": float(per_image_l1[keep].mean()) if name.startswith("dfr") else None,
                "projection_steps": steps if name.startswith("dfr") else None,
            })
        count = min(8, gt.shape[0])
        render = module.renderer(dfr[:count]).image * 2 - 1
        module._pictures("test/dfr_ground_truth", [images_to_grid(
            torch.cat([targets[:count], result.images[:count].clamp(-1, 1), render]), cols=count)])
    return rows


# ---------------------------------------------------------------------------------------------- StyleRig
def _sweep(module, control: str, w: torch.Tensor, steps: int) -> tuple[str, list[torch.Tensor]] | None:
    """Target parameter vectors of a one-parameter sweep for ``control``: (name, list of ``[B, P]``)."""
    p = module.dfr(w)
    layout = module.layout
    values = torch.linspace(-1.0, 1.0, steps)
    targets = []
    if control in ("pose", "all"):
        name = "yaw"
        for t in values:
            q = p.clone()
            q[:, layout.rotation.start + 1] = 0.5 * float(t)                  # yaw in [-0.5, 0.5] rad
            targets.append(q)
    elif control == "expression":
        names = list(getattr(module.face_model, "exp_names", []))
        index = names.index("jaw_open") if "jaw_open" in names else 0
        name = names[index] if names else "expression_0"
        for t in values:
            q = p.clone()
            q[:, layout.expression.start + index] = 0.5 * (float(t) + 1.0)    # 0 .. 1
            targets.append(q)
    elif control == "illumination":
        name = "light_direction"
        for t in values:                                                       # azimuth -60 .. 60 degrees
            angle = float(t) * math.pi / 3
            q = p.clone()
            sh = q[:, layout.sh_coeffs].reshape(-1, 3, 9).clone()
            direction = (math.sin(angle), 0.0, math.cos(angle))
            # linear SH bands (Deep3DFaceRecon order): 1 ~ -n_y, 2 ~ n_z, 3 ~ -n_x; light = 0.3 n . d
            sh[:, :, 1], sh[:, :, 2], sh[:, :, 3] = -0.3 * direction[1], 0.3 * direction[2], -0.3 * direction[0]
            q[:, layout.sh_coeffs] = sh.reshape(-1, 27)
            targets.append(q)
    else:
        return None
    return name, targets


@torch.no_grad()
def evaluate_stylerig(module, datamodule, split: str = "test") -> dict[str, list[dict[str, Any]]]:
    """RigNet tables on the first ``module.evaluation.pairs`` ``split`` latents, pairs ``(w, v)`` (``v`` = the
    latents rolled by one), per control:

    - ``edit_accuracy``: per controlled part, ``|F(w_hat) - F(v)|`` (after the edit) and
      ``|F(w) - F(v)|`` (no edit: the distance the edit had to cover); with a face regressor also the
      same on images, ``|reg(G(w_hat)) - reg(G(v))|`` vs ``|reg(G(w)) - reg(G(v))|`` (independent of F).
    - ``preservation``: per other part, ``|F(w_hat) - F(w)|`` and as reference ``|F(v) - F(w)|``.
    - ``identity``: ``identity_mm`` between the neutral shapes of ``F(w_hat)`` and ``F(w)`` (and of the
      regressor on the images), with the reference ``F(v)`` vs ``F(w)``; ``rec_w`` = ``||RigNet(w, F(w)) - w||``
      per layer; ``dlib_identity_distance`` (``G(w_hat)`` vs ``G(w)``), ``dlib_reference_other_face`` (``G(v)`` vs
      ``G(w)``) and ``dlib_no_face`` (pairs without a face, left out), when ``evaluation.identity_dlib``.

    Pictures: an edit grid per control (top row targets ``w``, left column sources ``v``, cell
    ``G(RigNet(w, F(v)))``) and a sweep per control (yaw, jaw open, light direction; rows ``G(w_hat)``
    over the rendering of the target parameters).
    """
    dataset = datamodule.dataset(split)
    device = module.device
    w = dataset.w_plus[:module.evaluation.pairs].to(device)
    if w.shape[0] < 2:
        log.info("StyleRig evaluation needs at least 2 %s latents", split)
        return {}
    v_index = torch.roll(torch.arange(w.shape[0], device=device), 1)
    layout = module.layout
    regressor = module.__dict__.get("landmark_model")
    p_w = module.dfr(w)
    p_v = p_w[v_index]
    reg_w = reg_v = None
    use_dlib = bool(getattr(module.evaluation, "identity_dlib", True))
    images_w = _batched(module.synthesize, w) if regressor is not None or use_dlib else None
    if regressor is not None:
        regressor.to(device)
        reg_w = _batched(lambda x: regressor.predict(x)["params"], images_w)
        reg_v = reg_w[v_index]
    dlib_reference = dlib_identity(images_w, images_w[v_index]) if use_dlib else None
    accuracy, preservation, identity = [], [], []
    reference = part_errors(p_v, p_w, layout)
    for control in module.controls:
        rig = module.rignets[control]
        w_hat = rig(w, p_v)
        p_hat = module.dfr(w_hat)
        after, before = part_errors(p_hat, p_v, layout), part_errors(p_w, p_v, layout)
        kept = part_errors(p_hat, p_w, layout)
        img_after = img_before = None
        reg_hat = None
        images_hat = _batched(module.synthesize, w_hat) if regressor is not None or use_dlib else None
        if regressor is not None:
            reg_hat = _batched(lambda x: regressor.predict(x)["params"], images_hat)
            img_after, img_before = part_errors(reg_hat, reg_v, layout), part_errors(reg_w, reg_v, layout)
        for part in CONTROL_PARTS[control]:
            row = {"control": control, "part": part, "unit": UNITS[part], "n": w.shape[0],
                   "error_after_edit": float(after[part].mean()), "error_without_edit": float(before[part].mean())}
            if img_after is not None:
                row["image_error_after_edit"] = float(img_after[part].mean())
                row["image_error_without_edit"] = float(img_before[part].mean())
            accuracy.append(row)
        for part in kept:
            if part in CONTROL_PARTS[control]:
                continue
            preservation.append({"control": control, "part": part, "unit": UNITS[part],
                                 "change_by_edit": float(kept[part].mean()),
                                 "reference_other_face": float(reference[part].mean())})
        row = {"control": control, "n": w.shape[0],
               "identity_mm": float(shape_distance_mm(module.face_model, p_hat, p_w, layout, neutral=True).mean()),
               "reference_other_face_mm": float(shape_distance_mm(module.face_model, p_v, p_w, layout,
                                                                  neutral=True).mean()),
               "rec_w": float((rig(w, p_w) - w).pow(2).sum(-1).mean(-1).sqrt().mean()),
               "delta_w": float((w_hat - w).pow(2).sum(-1).mean(-1).sqrt().mean())}
        if reg_hat is not None:
            row["image_identity_mm"] = float(shape_distance_mm(module.face_model, reg_hat, reg_w, layout,
                                                               neutral=True).mean())
            row["image_reference_other_face_mm"] = float(shape_distance_mm(module.face_model, reg_v, reg_w, layout,
                                                                           neutral=True).mean())
        if use_dlib:
            distance, missing = dlib_identity(images_w, images_hat)
            row.update(dlib_identity_distance=distance, dlib_reference_other_face=dlib_reference[0],
                       dlib_no_face=missing, dlib_reference_no_face=dlib_reference[1])
        identity.append(row)
        _edit_grid(module, control, w, split)
        _sweep_picture(module, control, w, split)
    return {"edit_accuracy": accuracy, "preservation": preservation, "identity": identity}


def _edit_grid(module, control: str, w: torch.Tensor, split: str) -> None:
    """Fig. 5/9-style grid for ``control``."""
    n = min(int(module.evaluation.grid_size), w.shape[0] // 2)
    if n < 1:
        return
    sources, targets = w[:n], w[n:2 * n]
    p_src = module.dfr(sources)
    blank = torch.full((1, 3, module.G.img_resolution, module.G.img_resolution), -1.0, device=w.device)
    cells = [blank, module.synthesize(targets)]
    src_images = module.synthesize(sources)
    for i in range(n):
        edited = module.edit(targets, p_src[i:i + 1].expand(n, -1), control)
        cells += [src_images[i:i + 1], module.synthesize(edited)]
    module._pictures(f"{split}/edit_grid_{control}", [images_to_grid(torch.cat(cells), cols=n + 1)])


def _sweep_picture(module, control: str, w: torch.Tensor, split: str) -> None:
    """One-parameter sweep for ``control`` over ``sweep_latents`` latents and ``sweep_steps`` values."""
    latents = w[:int(module.evaluation.sweep_latents)]
    sweep = _sweep(module, control, latents, int(module.evaluation.sweep_steps))
    if sweep is None:
        return
    name, targets = sweep
    rows = []
    for i in range(latents.shape[0]):
        generated = torch.cat([module.synthesize(module.edit(latents[i:i + 1], p[i:i + 1], control)) for p in targets])
        rendered = torch.cat([module.renderer(p[i:i + 1]).image * 2 - 1 for p in targets])
        rows += [generated, rendered]
    module._pictures(f"{split}/sweep_{control}_{name}", [images_to_grid(torch.cat(rows), cols=len(targets))])
