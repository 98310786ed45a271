"""The face regressor's network: a small CNN from a face image to morphable-face parameters and 68 landmarks.

It is the "parameter regressor" of model-based face autoencoders (MoFA, Tewari et al. 2017, sec. 4: a CNN
encoder to the semantic code vector; Deep3DFaceRecon, Deng et al. 2019), trained here with full supervision on
the face world's synthetic images (:mod:`facegen.models.face_regressor.module`). Targets are the parameter
vector ``p`` (:mod:`facegen.morphable.params`: identity, expression, albedo, 27 SH, rotation, translation) and
the flattened landmarks (pixels at the network's resolution), each standardised by its training-set mean and
standard deviation (``target_mean``, ``target_std``, buffers of the network).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from facegen.errors import CheckpointError, DatasetLayoutError
from facegen.shapes import assert_shape

N_LANDMARKS = 68
N_SH = 27
GROUPS = ("identity", "expression", "albedo", "sh_coeffs", "rotation", "translation", "landmarks")


def group_slices(n_id: int, n_exp: int, n_alb: int) -> dict[str, slice]:
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
        self.slices = group_slices(self.n_id, self.n_exp, self.n_alb)
        self.n_params = self.n_id + self.n_exp + self.n_alb + N_SH + 6
        self.n_out = self.n_params + 2 * N_LANDMARKS
        mean = torch.zeros(self.n_out) if target_mean is None else torch.as_tensor(target_mean, dtype=torch.float32)
        std = torch.ones(self.n_out) if target_std is None else torch.as_tensor(target_std, dtype=torch.float32)
        for name, value in (("target_mean", mean), ("target_std", std)):
            assert_shape(value, [self.n_out], f"FaceRegressor {name}", error=CheckpointError,
                         hint=f"params {self.n_params} + landmarks {2 * N_LANDMARKS}")
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
        """``images [B, C, R, R]`` in [-1, 1] (``C = channels``, ``R = resolution``) -> standardised targets
        ``[B, P + 136]``. :meth:`predict` converts other sizes and channel counts.

        Raises:
            DatasetLayoutError: ``images`` is not ``[B, channels, resolution, resolution]``.
        """
        assert_shape(images, ["B", self.channels, self.resolution, self.resolution], "FaceRegressor images",
                     error=DatasetLayoutError, hint="predict() resizes and converts other inputs")
        return self.head(self.features(images))

    def normalise(self, params: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """Ground truth ``params [B, P]``, ``landmarks [B, 68, 2]`` (pixels at ``resolution``) -> ``[B, P + 136]``."""
        return (torch.cat([params, landmarks.flatten(1)], 1) - self.target_mean) / self.target_std

    def _prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        assert_shape(images, ["B", "C", "H", "W"], "FaceRegressor images", error=DatasetLayoutError,
                     hint="C = 1 or 3, values in [-1, 1]")
        if images.shape[1] not in (1, 3):
            assert_shape(images, ["B", self.channels, "H", "W"], "FaceRegressor images", error=DatasetLayoutError,
                         hint="C = 1 or 3 (converted to the network's), values in [-1, 1]")
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
