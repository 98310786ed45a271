"""Expression diversity of generated faces, through a small landmark regressor trained on the augmented set.

Generated images carry no landmarks and facegen ships no pretrained face-landmark detector (none loads
offline for animal faces). The augmented pool of the macaque recipe does carry them: every warped frame has
the keypoints the thin-plate spline moved it to (``augment/landmarks.json``). A small CNN
(:class:`LandmarkRegressor`) is fitted to those pairs and then reads landmarks off generated samples.

Expression diversity (:func:`expression_diversity`) is the spread of the landmark displacements from the
neutral template across samples: with ``d_i = (p_i - template) / face_size`` (``[K, 2]`` per sample, face
size = RMS distance of the template points from their centroid), ``spread = sqrt(mean_k mean_i
||d_ik - mean_i d_ik||^2)``; ``displacement = mean_ik ||d_ik||``. Both in units of face size. The
regressor's own held-out error is reported next to them (``regressor_error_px``) so the reader can judge
which differences are above its noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LandmarkRegressor(nn.Module):
    """``[B, C, R, R]`` images in [-1, 1] -> ``[B, K, 2]`` landmarks in pixels (four stride-2 convs + linear)."""

    def __init__(self, resolution: int, channels: int, num_points: int = 68, width: int = 32):
        super().__init__()
        self.resolution, self.num_points = resolution, num_points
        layers, c = [], channels
        for w in (width, 2 * width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Linear(c * 16, num_points * 2)

    def forward(self, images: Tensor) -> Tensor:
        unit = self.head(self.features(images)).view(-1, self.num_points, 2)  # offsets in image units
        return (unit + 0.5) * self.resolution - 0.5


@dataclass
class RegressorFit:
    model: LandmarkRegressor
    val_error_px: float        # mean point error on the held-out images, pixels
    n_train: int
    n_val: int


def fit_landmark_regressor(images: Tensor, landmarks: Tensor, steps: int = 400, batch_size: int = 32,
                           lr: float = 2e-3, val_fraction: float = 0.1, seed: int = 0) -> RegressorFit:
    """Fit a :class:`LandmarkRegressor` to ``images [N, C, R, R]`` in [-1, 1] and ``landmarks [N, K, 2]`` pixels.

    Adam, L1 loss on coordinates in image units, random horizontal shifts of up to 2 pixels (landmarks
    shifted alike); a seeded ``val_fraction`` is held out and its mean point error returned.
    """
    g = torch.Generator().manual_seed(seed)
    n, c, r, _ = images.shape
    order = torch.randperm(n, generator=g)
    n_val = max(1, int(round(n * val_fraction))) if n > 4 else 0
    val, train = order[:n_val], order[n_val:]
    torch.manual_seed(seed)
    model = LandmarkRegressor(r, c, landmarks.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        idx = train[torch.randint(len(train), (min(batch_size, len(train)),), generator=g)]
        x, y = images[idx], landmarks[idx].clone()
        shift = torch.randint(-2, 3, (2,), generator=g)
        x = torch.roll(x, shifts=(int(shift[1]), int(shift[0])), dims=(2, 3))
        y = y + shift.to(y)
        loss = F.l1_loss(model(x) / r, y / r)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    error = float("nan")
    if n_val:
        with torch.no_grad():
            error = float((model(images[val]) - landmarks[val]).norm(dim=-1).mean())
    return RegressorFit(model, error, len(train), n_val)


def expression_diversity(points: np.ndarray, template: np.ndarray) -> dict[str, float]:
    """``points [N, K, 2]`` (pixels) vs the neutral ``template [K, 2]``: ``expr_spread`` and
    ``expr_displacement`` in face sizes (module docstring)."""
    template = np.asarray(template, np.float64)
    size = float(np.sqrt(((template - template.mean(0)) ** 2).sum(1).mean()))
    d = (np.asarray(points, np.float64) - template) / size                  # [N, K, 2]
    spread = float(np.sqrt(((d - d.mean(0)) ** 2).sum(-1).mean()))
    return {"expr_spread": spread, "expr_displacement": float(np.linalg.norm(d, axis=-1).mean())}


@torch.no_grad()
def predict_landmarks(model: LandmarkRegressor, images: Tensor, batch_size: int = 128) -> np.ndarray:
    """``[N, K, 2]`` pixel landmarks of ``images [N, C, R, R]``."""
    return torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]).numpy()


__all__ = ["LandmarkRegressor", "RegressorFit", "expression_diversity", "fit_landmark_regressor", "predict_landmarks"]
