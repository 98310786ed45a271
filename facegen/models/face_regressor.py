"""A small CNN that regresses morphable-face parameters and 68 landmarks from a face image.

Trained on the face world's synthetic images, whose ground truth is known
(:func:`facegen.data.synthetic.write_image_dataset`: every parameter and the 68 projected landmarks
per image). It is the "parameter regressor" of model-based face autoencoders (MoFA, Tewari et al.
2017, sec. 4: a CNN encoder to the semantic code vector; Deep3DFaceRecon, Deng et al. 2019) trained
here with full supervision on synthetic data instead of a self-supervised photometric loss. Uses:
68 landmarks on StyleGAN2 face images (StyleRig's DFR) and expression/identity coefficients of
generated images (micromotion evaluation).

Targets are the parameter vector ``p`` (:mod:`facegen.morphable.params`: identity, expression,
albedo, 27 SH, rotation, translation) and the flattened landmarks (pixels at the model resolution),
each standardised by its training-set mean and standard deviation; the loss is the weighted mean
squared error of the standardised targets. The file written by :func:`save_face_regressor` holds the
weights and everything needed to rebuild the network (resolution, channels, sizes, normalisation).

Entry points: ``python -m facegen.train model=face_regressor`` (LightningModule
:class:`FaceRegressorModule` on ``data=synthetic_faces`` with ``ground_truth=true``), or
``python -m facegen.models.face_regressor --data <folder> ... --out regressor.pt`` (in-memory trainer
:func:`train_face_regressor`, faster on CPU).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facegen.checkpoints import load
from facegen.data.images import decode_image
from facegen.data.synthetic import load_ground_truth
from facegen.errors import CheckpointError, DatasetLayoutError
from facegen.utils import atomic_torch_save

log = logging.getLogger(__name__)

N_LANDMARKS = 68
N_SH = 27
FORMAT = "facegen.face_regressor/1"
GROUPS = ("identity", "expression", "albedo", "sh_coeffs", "rotation", "translation", "landmarks")
DEFAULT_WEIGHTS = {"identity": 1.0, "expression": 2.0, "albedo": 0.25, "sh_coeffs": 0.25, "rotation": 1.0,
                   "translation": 0.5, "landmarks": 2.0}


def _group_slices(n_id: int, n_exp: int, n_alb: int) -> dict[str, slice]:
    """Slices of the target vector ``[P + 136]`` = params (layout of facegen.morphable.params) + landmarks."""
    sizes = {"identity": n_id, "expression": n_exp, "albedo": n_alb, "sh_coeffs": N_SH, "rotation": 3,
             "translation": 3, "landmarks": 2 * N_LANDMARKS}
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = slice(start, start + size)
        start += size
    return out


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.2, inplace=True))


class FaceRegressor(nn.Module):
    """CNN: image ``[B, C, H, W]`` in [-1, 1] -> standardised targets ``[B, P + 136]``.

    Architecture: a stride-2 3x3 stem, then stride-2 stages (two 3x3 conv + BatchNorm + LeakyReLU each,
    widths ``width * (2, 4, 8, 8, ...)``) down to 4x4, flattened (keeps the spatial layout landmarks
    need), a 512-unit hidden layer and one linear output. For a resolution of ``R = 8 * 2^k`` there are
    ``k`` stages.

    Args:
        resolution: input size in pixels (square, a power-of-two multiple of 8, >= 16). Other input sizes
            are resized to it in :meth:`predict` and the landmarks scaled back.
        channels: 1 (grey) or 3 (RGB).
        n_id, n_exp, n_alb: coefficient counts of the morphable model the targets come from.
        target_mean, target_std: ``[P + 136]`` normalisation of (params, landmarks in pixels); default 0 / 1.
        width: channels of the first stage.
        exp_names: names of the expression coefficients (stored in the file, informational).
        exp_bounds: ``(low, high)`` range of the expression coefficients (blendshape rigs: ``(0, 1)``);
            :meth:`predict` clamps to it. None = unbounded (PCA expression spaces).

    Raises:
        CheckpointError: an invalid resolution/channel count or normalisation of the wrong length.
    """

    def __init__(self, resolution: int = 64, channels: int = 3, n_id: int = 20, n_exp: int = 28, n_alb: int = 10,
                 target_mean: torch.Tensor | Sequence[float] | None = None,
                 target_std: torch.Tensor | Sequence[float] | None = None, width: int = 32,
                 exp_names: Sequence[str] | None = None, exp_bounds: Sequence[float] | None = None):
        super().__init__()
        stages = int(round(math.log2(resolution / 8))) if resolution >= 16 else -1
        if stages < 1 or 8 * 2 ** stages != resolution or channels not in (1, 3):
            raise CheckpointError(f"FaceRegressor needs resolution = 8 * 2^k >= 16 and channels 1 or 3, "
                                  f"got resolution={resolution}, channels={channels}")
        self.resolution, self.channels, self.width = int(resolution), int(channels), int(width)
        self.n_id, self.n_exp, self.n_alb = int(n_id), int(n_exp), int(n_alb)
        self.exp_names = list(exp_names or [])
        self.exp_bounds = None if exp_bounds is None else (float(exp_bounds[0]), float(exp_bounds[1]))
        self.slices = _group_slices(self.n_id, self.n_exp, self.n_alb)
        self.n_params = self.n_id + self.n_exp + self.n_alb + N_SH + 6
        self.n_out = self.n_params + 2 * N_LANDMARKS
        mean = torch.zeros(self.n_out) if target_mean is None else torch.as_tensor(target_mean, dtype=torch.float32)
        std = torch.ones(self.n_out) if target_std is None else torch.as_tensor(target_std, dtype=torch.float32)
        if mean.shape != (self.n_out,) or std.shape != (self.n_out,):
            raise CheckpointError(f"FaceRegressor normalisation has shapes {tuple(mean.shape)}/{tuple(std.shape)}; "
                                  f"expected [{self.n_out}] = params {self.n_params} + landmarks 136")
        self.register_buffer("target_mean", mean.clone())
        self.register_buffer("target_std", std.clamp(min=1e-2).clone())   # constant targets: no blow-up
        layers = [_block(channels, width, 2)]                           # stride-2 stem: R/2
        c = width
        for i in range(stages):
            c_out = width * min(2 ** (i + 1), 8)
            layers += [_block(c, c_out, 2), _block(c_out, c_out, 1)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * 16, 512), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Linear(512, self.n_out))

    def config(self) -> dict:
        """Everything needed to rebuild this network (plain Python types; stored by :func:`save_face_regressor`)."""
        return {"resolution": self.resolution, "channels": self.channels, "n_id": self.n_id, "n_exp": self.n_exp,
                "n_alb": self.n_alb, "width": self.width, "exp_names": self.exp_names,
                "exp_bounds": None if self.exp_bounds is None else list(self.exp_bounds),
                "target_mean": self.target_mean.tolist(), "target_std": self.target_std.tolist()}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, C, R, R]`` in [-1, 1] -> standardised targets ``[B, P + 136]``."""
        return self.head(self.features(images))

    def normalise(self, params: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """Ground truth ``params [B, P]``, ``landmarks [B, 68, 2]`` (pixels at ``resolution``) -> ``[B, P + 136]``."""
        return (torch.cat([params, landmarks.flatten(1)], 1) - self.target_mean) / self.target_std

    def _prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise DatasetLayoutError(f"FaceRegressor input has shape {tuple(images.shape)}; expected [B, C, H, W] "
                                     f"with C = 1 or 3, values in [-1, 1]")
        if images.shape[1] != self.channels:       # RGB <-> grey (ITU-R 601 luma)
            if self.channels == 1:
                luma = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype)
                images = (images * luma[:, None, None]).sum(1, keepdim=True)
            else:
                images = images.expand(-1, 3, -1, -1)
        h, w = images.shape[-2:]
        if (h, w) != (self.resolution, self.resolution):
            images = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear",
                                   align_corners=False, antialias=True)
        return images, w / self.resolution, h / self.resolution

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Parameters and landmarks of face images (eval mode, no gradients; the training mode is restored).

        Args:
            images: ``[B, C, H, W]`` in [-1, 1]; C = 1 or 3 (converted to ``channels``); any H, W
                (resized to ``resolution``; landmarks are returned in the input's pixels).

        Returns:
            dict of ``id [B, K_id]``, ``exp [B, K_exp]`` (clamped to ``exp_bounds``), ``albedo [B, K_alb]``,
            ``sh_coeffs [B, 27]``, ``rotation [B, 3]`` (radians, XYZ Euler), ``translation [B, 3]`` (mm),
            ``params [B, P]`` (the :mod:`facegen.morphable.params` vector) and ``landmarks [B, 68, 2]`` (pixels, centres at
            integers, Multi-PIE order).

        Raises:
            DatasetLayoutError: ``images`` is not ``[B, 1 or 3, H, W]``.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                x, sx, sy = self._prepare(images)
                out = self(x) * self.target_std + self.target_mean
        finally:
            self.train(was_training)
        s = self.slices
        if self.exp_bounds is not None:
            out[:, s["expression"]] = out[:, s["expression"]].clamp(*self.exp_bounds)
        landmarks = out[:, s["landmarks"]].view(-1, N_LANDMARKS, 2)
        scale = landmarks.new_tensor([sx, sy])
        landmarks = (landmarks + 0.5) * scale - 0.5
        return {"id": out[:, s["identity"]], "exp": out[:, s["expression"]], "albedo": out[:, s["albedo"]],
                "sh_coeffs": out[:, s["sh_coeffs"]], "rotation": out[:, s["rotation"]],
                "translation": out[:, s["translation"]], "params": out[:, :self.n_params], "landmarks": landmarks}


def regressor_loss(model: FaceRegressor, images: torch.Tensor, params: torch.Tensor, landmarks: torch.Tensor,
                   weights: dict[str, float] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted MSE of the standardised targets; returns ``(loss, per-group MSE)``.

    ``images [B, C, R, R]`` in [-1, 1], ``params [B, P]``, ``landmarks [B, 68, 2]`` pixels at ``R``.
    """
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    error = (model(images) - model.normalise(params, landmarks)).pow(2)
    terms = {name: error[:, s].mean() for name, s in model.slices.items()}
    total = sum(weights[name] * terms[name] for name in terms) / sum(weights[name] for name in terms)
    return total, terms


def augment_images(images: torch.Tensor, generator: torch.Generator | None = None,
                   strength: float = 1.0) -> torch.Tensor:
    """Photometric augmentation that keeps geometry (so the targets stay valid): per-image brightness,
    contrast and colour gain, Gaussian blur (sometimes) and pixel noise. ``images [B, C, H, W]`` in [-1, 1]."""
    if strength <= 0:
        return images
    b, c = images.shape[:2]
    dev = images.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    x = (images + 1) / 2
    gain = 1 + strength * 0.2 * (rand(b, 1, 1, 1) * 2 - 1) + strength * 0.05 * (rand(b, c, 1, 1) * 2 - 1)
    bias = strength * 0.06 * (rand(b, 1, 1, 1) * 2 - 1)
    mean = x.mean((1, 2, 3), keepdim=True)
    contrast = 1 + strength * 0.2 * (rand(b, 1, 1, 1) * 2 - 1)
    x = (x - mean) * contrast + mean
    x = x * gain + bias
    blur = rand(b) < 0.3 * strength
    if blur.any():
        kernel = torch.tensor([0.25, 0.5, 0.25], device=dev, dtype=x.dtype)
        kernel = (kernel[:, None] * kernel[None]).expand(c, 1, 3, 3)
        blurred = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
        x = x.clone()
        x[blur] = blurred
    x = x + strength * 0.03 * rand(b, 1, 1, 1) * torch.randn(x.shape, generator=generator).to(dev)
    return (x.clamp(0, 1) * 2 - 1)


# ----------------------------------------------------------------------------------------------------- data


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


def _to_input(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float() / 127.5 - 1


# -------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_face_regressor(model: FaceRegressor, data: dict, batch_size: int = 256) -> dict[str, float]:
    """Errors of ``model`` on ``data`` (:func:`load_synthetic_faces` dict, same resolution as the model).

    Returns ``landmark_px`` (mean Euclidean error per landmark, pixels), ``landmark_px_p95``,
    ``exp_mae`` (mean absolute error of the expression coefficients), ``exp_corr`` (Pearson correlation
    predicted vs. true over all images, averaged over the coefficients that vary), ``id_mae``,
    ``id_corr``, ``rotation_deg`` (mean absolute error per angle), ``translation_mm``, and the same MAEs
    of the trivial predictor "training mean" (``*_mae_mean_predictor``) for scale.
    """
    preds = [model.predict(_to_input(data["images"][i:i + batch_size])) for i in range(0, len(data["images"]),
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


# ------------------------------------------------------------------------------------------------ files


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


# ---------------------------------------------------------------------------------------------- training


def train_face_regressor(train: dict | str | Path | Sequence[str | Path], val: dict | str | Path | None = None,
                         resolution: int | None = None, channels: int = 3, width: int = 32, epochs: int = 30,
                         batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 1e-4,
                         augment: float = 1.0, weights: dict[str, float] | None = None, seed: int = 0,
                         out: str | Path | None = None, max_minutes: float | None = None,
                         log_every: int = 1) -> FaceRegressor:
    """Train a :class:`FaceRegressor` on synthetic faces with ground truth (in memory, AdamW, one-cycle LR).

    Args:
        train: a :func:`load_synthetic_faces` dict, or one or more folders written by
            :func:`facegen.data.synthetic.write_image_dataset` (e.g. a ``SyntheticFacesDataModule`` cache folder).
        val: held-out data (dict or folder) evaluated after each epoch (:func:`evaluate_face_regressor`).
        resolution, channels, width: network input and size (resolution None = the data's).
        epochs, batch_size, lr, weight_decay: optimisation; augment: photometric augmentation strength.
        weights: per-group loss weights (keys of :data:`DEFAULT_WEIGHTS`).
        out: if given, the model is saved there (:func:`save_face_regressor`) after every epoch and at the end.
        max_minutes: stop after the epoch that passes this wall time.

    Returns:
        the trained model (eval mode); ``model.history`` holds per-epoch losses and validation errors.
    """
    def as_data(source):
        if isinstance(source, dict):
            return source
        sources = [source] if isinstance(source, (str, Path)) else list(source)
        return concat_faces([load_synthetic_faces(s, resolution, channels) for s in sources])

    data = as_data(train)
    val_data = as_data(val) if val is not None else None
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    targets = torch.cat([data["params"], data["landmarks"].flatten(1)], 1)
    exp = data["params"][:, _group_slices(data["n_id"], data["n_exp"], data["n_alb"])["expression"]]
    bounds = (0.0, 1.0) if exp.numel() and exp.min() >= 0 and exp.max() <= 1 else None   # a [0, 1] rig
    model = FaceRegressor(data["resolution"], channels, data["n_id"], data["n_exp"], data["n_alb"],
                          targets.mean(0), targets.std(0), width, data["exp_names"], bounds)
    n = len(data["images"])
    steps_per_epoch = max(1, n // batch_size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                   pct_start=0.15)
    model.history = []
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=g)
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * batch_size:(step + 1) * batch_size]
            x = augment_images(_to_input(data["images"][idx]), g, augment)
            loss, _ = regressor_loss(model, x, data["params"][idx], data["landmarks"][idx], weights)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item()
        row = {"epoch": epoch + 1, "train_loss": total / steps_per_epoch, "minutes": (time.perf_counter() - start) / 60}
        if val_data is not None:
            row.update({f"val_{k}": v for k, v in evaluate_face_regressor(model, val_data).items()})
        model.history.append(row)
        if log_every and (epoch + 1) % log_every == 0:
            log.info("face regressor epoch %s", json.dumps(row))
            print(json.dumps(row), flush=True)
        if out is not None:
            save_face_regressor(model, out, {"history": model.history})
        if max_minutes is not None and row["minutes"] > max_minutes:
            log.info("face regressor: stopping after %d epochs (max_minutes=%s)", epoch + 1, max_minutes)
            break
    return model.eval()


class FaceRegressorModule(pl.LightningModule):
    """Lightning training of :class:`FaceRegressor` (``python -m facegen.train model=face_regressor``).

    Built by ``facegen.train`` with the datamodule's ``model_kwargs()``
    (:class:`facegen.data.synthetic.SyntheticFacesDataModule` with ``ground_truth=True``: ``img_resolution,
    img_channels, n_id, n_exp, n_alb, exp_names, target_mean, target_std``). Batches: ``image [B, C, R, R]``
    in [-1, 1], ``params [B, P]``, ``landmarks [B, 68, 2]`` pixels. Logs ``train/loss``, ``val/loss``,
    ``val/landmark_px``, ``val/exp_mae``, ``val/id_mae``, ``val/rotation_deg``. At the end of training the
    network is written with :func:`save_face_regressor` to ``save_path`` (default
    ``<run folder>/regressor.pt``).
    """

    def __init__(self, img_resolution: int, img_channels: int = 3, n_id: int = 20, n_exp: int = 28, n_alb: int = 10,
                 target_mean=None, target_std=None, exp_names: Sequence[str] | None = None, c_dim: int = 0,
                 width: int = 32, lr: float = 2e-3, weight_decay: float = 1e-4, augment: float = 1.0,
                 loss_weights: dict | None = None, save_path: str | None = None,
                 exp_bounds: Sequence[float] | None = (0.0, 1.0)):
        super().__init__()
        self.save_hyperparameters(ignore=["target_mean", "target_std", "exp_names"])
        self.regressor = FaceRegressor(img_resolution, img_channels, n_id, n_exp, n_alb, target_mean, target_std,
                                       width, exp_names, exp_bounds)
        self.loss_weights = dict(loss_weights or {})
        self.save_path = save_path

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x = augment_images(batch["image"], None, self.hparams.augment)
        loss, terms = regressor_loss(self.regressor, x, batch["params"], batch["landmarks"], self.loss_weights)
        self.log("train/loss", loss, prog_bar=True)
        for name, value in terms.items():
            self.log(f"train/{name}_mse", value)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, _ = regressor_loss(self.regressor, batch["image"], batch["params"], batch["landmarks"],
                                 self.loss_weights)
        pred = self.regressor.predict(batch["image"])
        s = self.regressor.slices
        size = len(batch["image"])
        self.log("val/loss", loss, batch_size=size, prog_bar=True)
        self.log("val/landmark_px", (pred["landmarks"] - batch["landmarks"]).norm(dim=-1).mean(), batch_size=size)
        self.log("val/exp_mae", (pred["exp"] - batch["params"][:, s["expression"]]).abs().mean(), batch_size=size)
        self.log("val/id_mae", (pred["id"] - batch["params"][:, s["identity"]]).abs().mean(), batch_size=size)
        self.log("val/rotation_deg", (pred["rotation"] - batch["params"][:, s["rotation"]]).abs().mean()
                 * 180 / math.pi, batch_size=size)

    def configure_optimizers(self):
        optimiser = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = self.trainer.estimated_stepping_batches
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=self.hparams.lr, total_steps=max(1, total),
                                                       pct_start=0.15)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["face_regressor_config"] = self.regressor.config()

    def on_train_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        path = Path(self.save_path) if self.save_path else Path(self.trainer.default_root_dir) / "regressor.pt"
        save_face_regressor(self.regressor, path)
        log.info("face regressor written to %s", path)


def main(argv: Sequence[str] | None = None) -> FaceRegressor:
    """CLI: ``python -m facegen.models.face_regressor --data DIR [DIR ...] --val DIR --out FILE [--epochs N]``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data", nargs="+", required=True, help="folders written by write_image_dataset")
    parser.add_argument("--val", nargs="*", default=[], help="held-out folders (evaluated per epoch and at the end)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--augment", type=float, default=1.0)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=json.loads, default=None,
                        help='loss weights per group as JSON, e.g. \'{"expression": 4}\' (see DEFAULT_WEIGHTS)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    val = [load_synthetic_faces(v, args.resolution, args.channels) for v in args.val]
    model = train_face_regressor(args.data, val[0] if val else None, args.resolution, args.channels, args.width,
                                 args.epochs, args.batch_size, args.lr, augment=args.augment, weights=args.weights,
                                 seed=args.seed, out=args.out, max_minutes=args.max_minutes)
    report = {str(v): evaluate_face_regressor(model, d) for v, d in zip(args.val, val)}
    save_face_regressor(model, args.out, {"history": model.history, "data": [str(d) for d in args.data],
                                          "validation": report})
    print(json.dumps(report, indent=1))
    return model


if __name__ == "__main__":
    main()
