"""Validation errors of a trained face regressor on held-out synthetic faces.

    python experiments/face_world/regressor_eval.py runs/face_regressor/regressor.pt \
        runs/face_regressor/data/test_presets runs/face_regressor/data/val_sparse

Each folder is one written by ``facegen.data.synthetic.write_image_dataset`` (faces.zip + params.npz)
at the regressor's resolution. Prints one JSON dict of :func:`evaluate_face_regressor` per folder, plus
the error of predicting zero expression (the neutral face) for scale.
"""
from __future__ import annotations

import json
import sys

from facegen.models.face_regressor import (
    evaluate_face_regressor,
    load_face_regressor,
    load_synthetic_faces,
)


def main(path: str, *folders: str) -> dict:
    model = load_face_regressor(path)
    report = {}
    for folder in folders:
        data = load_synthetic_faces(folder, model.resolution, model.channels)
        metrics = evaluate_face_regressor(model, data)
        exp = data["params"][:, model.slices["expression"]]
        metrics["exp_mae_zero_predictor"] = float(exp.abs().mean())
        report[folder] = metrics
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main(*sys.argv[1:])
