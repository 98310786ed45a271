"""Errors of a face regressor on synthetic faces with ground truth (landmarks in pixels, rotation in degrees)."""
from __future__ import annotations

import math

import torch

from facegen.models.face_regressor.data import to_input
from facegen.models.face_regressor.network import FaceRegressor


@torch.no_grad()
def evaluate_face_regressor(model: FaceRegressor, data: dict, batch_size: int = 256) -> dict[str, float]:
    """Errors of ``model`` on ``data`` (:func:`load_synthetic_faces` dict, same resolution as the model).

    Returns ``landmark_px`` (mean Euclidean error per landmark, pixels), ``landmark_px_p95``,
    ``exp_mae`` (mean absolute error of the expression coefficients), ``exp_corr`` (Pearson correlation
    predicted vs. true over all images, averaged over the coefficients that vary), ``id_mae``,
    ``id_corr``, ``rotation_deg`` (mean absolute error per angle), ``translation_mm``, and the same MAEs
    of the trivial predictor "training mean" (``*_mae_mean_predictor``) for scale.
    """
    preds = [model.predict(to_input(data["images"][i:i + batch_size])) for i in range(0, len(data["images"]),
                                                                                     batch_size)]
    pred = {k: torch.cat([p[k] for p in preds]) for k in preds[0]}
    s = model.slices
    true = {"id": data["params"][:, s["identity"]], "exp": data["params"][:, s["expression"]],
            "rotation": data["params"][:, s["rotation"]], "translation": data["params"][:, s["translation"]]}
    mean = {"id": model.target_mean[s["identity"]], "exp": model.target_mean[s["expression"]]}
    lm_err = (pred["landmarks"] - data["landmarks"]).norm(dim=-1)

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a - a.mean(0), b - b.mean(0)
        keep = (b.std(0) > 1e-6) & (a.std(0) > 1e-9)
        r = (a * b).sum(0)[keep] / (a.norm(dim=0)[keep] * b.norm(dim=0)[keep])
        return float(r.mean()) if keep.any() else float("nan")

    return {"n": len(lm_err), "landmark_px": float(lm_err.mean()), "landmark_px_p95": float(lm_err.quantile(0.95)),
            "exp_mae": float((pred["exp"] - true["exp"]).abs().mean()), "exp_corr": corr(pred["exp"], true["exp"]),
            "exp_max_abs_p95": float((pred["exp"] - true["exp"]).abs().max(1).values.quantile(0.95)),
            "id_mae": float((pred["id"] - true["id"]).abs().mean()), "id_corr": corr(pred["id"], true["id"]),
            "rotation_deg": float((pred["rotation"] - true["rotation"]).abs().mean() * 180 / math.pi),
            "translation_mm": float((pred["translation"] - true["translation"]).abs().mean()),
            "exp_mae_mean_predictor": float((mean["exp"] - true["exp"]).abs().mean()),
            "id_mae_mean_predictor": float((mean["id"] - true["id"]).abs().mean())}
