"""Face-regressor files: ``{"format", "config", "state_dict", "extra"}`` written atomically, read through the one
loading policy (:func:`facegen.checkpoints.load`, ``weights_only=True``)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from facegen.checkpoints import load
from facegen.errors import CheckpointError
from facegen.models.face_regressor.network import FaceRegressor
from facegen.utils import atomic_torch_save

FORMAT = "facegen.face_regressor/1"


def save_face_regressor(model: FaceRegressor, path: str | Path, extra: dict | None = None) -> None:
    """Write ``model`` atomically to ``path``: ``{"format", "config", "state_dict", "extra"}`` (torch.save).

    ``config`` (:meth:`FaceRegressor.config`) is enough to rebuild the network, so
    :func:`load_face_regressor` needs nothing else. ``extra``: JSON-able notes (metrics, data).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"format": FORMAT, "config": model.config(), "state_dict": state,
                       "extra": json.loads(json.dumps(extra or {}))}, path)


def load_face_regressor(path: str | Path, map_location: str | torch.device = "cpu") -> FaceRegressor:
    """Rebuild a :class:`FaceRegressor` from a file of :func:`save_face_regressor` (eval mode).

    Raises:
        CheckpointError: the file is missing, unreadable, not a face-regressor file, or its weights do not
        fit its config (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"face regressor file {path} not found")
    blob = load(path, map_location=map_location)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or not {"config", "state_dict"} <= set(blob):
        raise CheckpointError(f"{path} is not a face regressor file (expected a dict with format {FORMAT!r}, "
                              f"config and state_dict)")
    try:
        model = FaceRegressor(**blob["config"])
        model.load_state_dict(blob["state_dict"])
    except (TypeError, RuntimeError, CheckpointError) as error:
        raise CheckpointError(f"face regressor file {path}: weights/config do not fit: {error}") from error
    return model.eval()
