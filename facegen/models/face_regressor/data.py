"""Synthetic faces with ground truth for the face regressor, in memory: folders of
:func:`facegen.data.synthetic.write_image_dataset` (``faces.zip`` + ``params.npz``) and a datamodule over them.

:class:`FaceTensorsDataModule` is what ``python -m facegen.models.face_regressor`` trains on (faster on CPU than
decoding PNGs per batch); ``python -m facegen.train model=face_regressor`` uses
:class:`facegen.data.synthetic.SyntheticFacesDataModule` with ``ground_truth=true``. Both give the same batches
(``image [B, C, R, R]`` in [-1, 1], ``params [B, P]``, ``landmarks [B, 68, 2]`` pixels) and the same
``model_kwargs()``.
"""
from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from facegen.data.images import decode_image
from facegen.data.synthetic import load_ground_truth
from facegen.errors import DatasetLayoutError

FaceSource = dict | str | Path | Sequence[str | Path]


def load_synthetic_faces(folder: str | Path, resolution: int | None = None, channels: int = 3) -> dict:
    """A folder written by :func:`facegen.data.synthetic.write_image_dataset`, in memory.

    Returns ``dict(images uint8 [N, C, R, R], params [N, P], landmarks [N, 68, 2] pixels at R, n_id,
    n_exp, n_alb, exp_names, resolution)``; ``resolution`` None = the stored one (else Lanczos resize,
    landmarks scaled).

    Raises:
        DatasetLayoutError: ``faces.zip`` or ``params.npz`` missing or inconsistent.
    """
    folder = Path(folder)
    table = load_ground_truth(folder)
    res = int(resolution or table["resolution"])
    zip_path = folder / "faces.zip"
    if not zip_path.exists():
        raise DatasetLayoutError(f"{zip_path} not found; expected a folder written by write_image_dataset")
    images = np.zeros((len(table["names"]), res, res, channels), np.uint8)
    with zipfile.ZipFile(zip_path) as archive:
        for i, name in enumerate(table["names"]):
            images[i] = decode_image(archive.read(name), res, channels)
    scale = res / table["resolution"]
    return {"images": torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), "params": table["params"],
            "landmarks": (table["landmarks"] + 0.5) * scale - 0.5, "n_id": table["n_id"], "n_exp": table["n_exp"],
            "n_alb": table["n_alb"], "exp_names": table["exp_names"], "resolution": res}


def concat_faces(parts: Sequence[dict]) -> dict:
    """Concatenate :func:`load_synthetic_faces` dicts of the same model and resolution.

    Raises DatasetLayoutError when their layouts or resolutions differ."""
    keys = ("n_id", "n_exp", "n_alb", "resolution")
    if len({tuple(p[k] for k in keys) for p in parts}) != 1:
        raise DatasetLayoutError(f"synthetic face folders differ in layout/resolution: "
                                 f"{[tuple(p[k] for k in keys) for p in parts]}")
    out = {k: parts[0][k] for k in (*keys, "exp_names")}
    for k in ("images", "params", "landmarks"):
        out[k] = torch.cat([p[k] for p in parts])
    return out


def to_input(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 images ``[..., C, H, W]`` -> float in [-1, 1]."""
    return images_uint8.float() / 127.5 - 1


def load_faces(source: FaceSource, resolution: int | None = None, channels: int = 3) -> dict:
    """A :func:`load_synthetic_faces` dict from such a dict (returned as it is), a folder or several folders
    (concatenated with :func:`concat_faces`)."""
    if isinstance(source, dict):
        return source
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    return concat_faces([load_synthetic_faces(s, resolution, channels) for s in sources])


class FaceTensors(Dataset):
    """Items ``dict(image [C, R, R] in [-1, 1], params [P], landmarks [68, 2] pixels)`` of a
    :func:`load_synthetic_faces` dict."""

    def __init__(self, data: dict):
        self.data = data

    def __len__(self) -> int:
        return len(self.data["images"])

    def __getitem__(self, index: int) -> dict:
        return {"image": to_input(self.data["images"][index]), "params": self.data["params"][index],
                "landmarks": self.data["landmarks"][index]}


class FaceTensorsDataModule(LightningDataModule):
    """In-memory synthetic faces with ground truth: ``train`` (shuffled, seeded, incomplete last batch dropped)
    and optionally ``val`` (:func:`load_synthetic_faces` dicts).

    ``model_kwargs()`` gives what :class:`~facegen.models.face_regressor.module.FaceRegressorModule` needs from
    the data: ``img_resolution``, ``img_channels``, ``n_id``, ``n_exp``, ``n_alb``, ``exp_names`` and the target
    normalisation ``target_mean``/``target_std`` ``[P + 136]`` over the training set.
    """

    def __init__(self, train: dict, val: dict | None = None, batch_size: int = 64, seed: int = 0):
        super().__init__()
        self.train_data, self.val_data = train, val
        self.batch_size = max(1, min(int(batch_size), len(train["images"])))
        self.seed = int(seed)

    def model_kwargs(self) -> dict:
        data = self.train_data
        targets = torch.cat([data["params"], data["landmarks"].flatten(1)], 1)
        return {"img_resolution": int(data["resolution"]), "img_channels": int(data["images"].shape[1]),
                "n_id": int(data["n_id"]), "n_exp": int(data["n_exp"]), "n_alb": int(data["n_alb"]),
                "exp_names": list(data["exp_names"]), "target_mean": targets.mean(0), "target_std": targets.std(0)}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(FaceTensors(self.train_data), batch_size=self.batch_size, shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader | list:
        if self.val_data is None:
            return []
        return DataLoader(FaceTensors(self.val_data), batch_size=256, shuffle=False)
