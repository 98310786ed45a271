"""Quality of a face-world generator against ground truth, in the features of facegen's face regressor.

The face world knows every real image's parameters, so a generator can be judged without Inception weights
(none are reachable here) by a network trained on that world: the face regressor
(:mod:`facegen.models.face_regressor`). Samples of ``G`` and a set of real renders are embedded with the
regressor's 512-unit hidden layer and compared by

- ``fd_regressor``: the Fréchet distance in those features (NOT Inception FID; the name says so),
- ``precision`` / ``recall``: Kynkäänniemi et al. 2019 (k = 3) in the same features,
- ``w1_<group>``: the mean 1-D Wasserstein distance between the regressed parameters (rotation in degrees,
  expression coefficients, SH light, ...) of the samples and of the real renders,

each beside its **floor**: the same number measured between two independent sets of real renders
(:func:`real_floor`), the value a perfect generator would get with these sample sizes.
:class:`GeneratorQualityCallback` logs them during training every ``every_kimg``.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from facegen.metrics.distribution import (
    frechet_distance,
    precision_recall,
    wasserstein_per_dim,
)
from facegen.models.face_regressor import (
    FaceRegressor,
    load_face_regressor,
    load_synthetic_faces,
)
from facegen.reporting import write_table

log = logging.getLogger(__name__)

# regressed parameter groups compared by their Wasserstein distance (rotation converted to degrees)
PARAM_GROUPS = ("rotation", "expression", "sh_coeffs", "identity", "albedo", "translation")


def embed(regressor: FaceRegressor, images: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``images [N, C, H, W]`` in [-1, 1] -> (features ``[N, 512]``, regressed parameters ``[N, P]``).

    Features: the regressor's hidden layer (after its LeakyReLU); parameters: :meth:`FaceRegressor.predict`'s
    ``params`` (the :mod:`facegen.morphable.params` vector, rotation in radians).
    """
    regressor = regressor.eval()
    features, params = [], []
    device = next(regressor.parameters()).device
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = images[start:start + batch].to(device).float()
            prepared, _, _ = regressor._prepare(x)
            features.append(regressor.head[:3](regressor.features(prepared)).cpu())
            params.append(regressor.predict(x)["params"].cpu())
    return torch.cat(features), torch.cat(params)


def _param_distances(regressor: FaceRegressor, params_a: torch.Tensor, params_b: torch.Tensor) -> dict[str, float]:
    w1 = wasserstein_per_dim(params_a, params_b)
    out = {}
    for group in PARAM_GROUPS:
        part = regressor.slices.get(group)
        if part is not None:
            scale = 180 / math.pi if group == "rotation" else 1.0
            out[f"w1_{group}" + ("_deg" if group == "rotation" else "")] = float(w1[part].mean() * scale)
    return out


def compare(regressor: FaceRegressor, real: tuple[torch.Tensor, torch.Tensor],
            other: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """The metrics between two embedded sets (``(features, params)`` from :func:`embed`)."""
    precision, recall = precision_recall(real[0], other[0])
    return {"fd_regressor": frechet_distance(real[0], other[0]), "precision": precision, "recall": recall,
            **_param_distances(regressor, real[1], other[1])}


def uint8_to_unit(images: torch.Tensor) -> torch.Tensor:
    """``uint8 [N, C, H, W]`` -> float in [-1, 1] (the generator's range)."""
    return images.float() / 127.5 - 1


@torch.no_grad()
def sample_images(G: torch.nn.Module, n: int, seed: int = 0, truncation_psi: float = 1.0,
                  batch: int = 64) -> torch.Tensor:
    """``n`` images ``[n, C, R, R]`` of ``G`` (eval mode, constant noise) from seeded latents ``z ~ N(0, I)``."""
    generator = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    try:
        out = []
        for start in range(0, n, batch):
            z = torch.randn([min(batch, n - start), G.z_dim], generator=generator).to(device)
            out.append(G(z, None, truncation_psi=truncation_psi, noise_mode="const").clamp(-1, 1).cpu())
        return torch.cat(out)
    finally:
        G.train(was_training)


class GeneratorQuality:
    """Real-set embeddings held once; :meth:`__call__` scores a generator, :meth:`floor` two real sets.

    Args:
        regressor: a :class:`FaceRegressor` or the path of its file.
        real: a folder of real renders written by ``facegen.synth images`` / ``write_image_dataset``.
        real_b: a second, independent folder for the floor (optional).
        num_samples: generated images per evaluation (the real set is used whole).
    """

    def __init__(self, regressor: FaceRegressor | str | Path, real: str | Path, real_b: str | Path | None = None,
                 num_samples: int = 2000, seed: int = 0, truncation_psi: float = 1.0):
        self.regressor = regressor if isinstance(regressor, FaceRegressor) else load_face_regressor(regressor)
        self.regressor.requires_grad_(False)
        self.num_samples, self.seed, self.truncation_psi = num_samples, seed, truncation_psi
        self.real = self._embed_folder(real)
        self.real_b = None if real_b is None else self._embed_folder(real_b)

    def _embed_folder(self, folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        data = load_synthetic_faces(folder, self.regressor.resolution, self.regressor.channels)
        return embed(self.regressor, uint8_to_unit(data["images"]))

    def floor(self) -> dict[str, float]:
        """The metrics between the real set and ``num_samples`` images of the second one (needs ``real_b``): the
        score of a perfect generator at this sample size (k-NN radii and the Fréchet bias depend on it)."""
        if self.real_b is None:
            raise ValueError("GeneratorQuality.floor needs real_b, a second independent folder of real renders")
        n = self.num_samples
        return compare(self.regressor, self.real, (self.real_b[0][:n], self.real_b[1][:n]))

    def __call__(self, G: torch.nn.Module) -> dict[str, float]:
        """The metrics of ``num_samples`` images of ``G`` against the real set."""
        images = sample_images(G, self.num_samples, self.seed, self.truncation_psi)
        return compare(self.regressor, self.real, embed(self.regressor, images))


class GeneratorQualityCallback(Callback):
    """Log :class:`GeneratorQuality` of ``module.G_ema`` every ``every_kimg`` thousand images (and at the start).

    Metrics go to the loggers as ``quality/<name>`` and to ``<run_dir>/metrics/quality.csv`` / ``.md``
    (one row per evaluation, with ``kimg``); the floor (when ``real_b`` is given) is logged once as
    ``quality/floor_<name>``. When the regressor file or a real folder is missing, one warning says so and the
    run goes on without these metrics.
    """

    def __init__(self, regressor_path: str, real: str, real_b: str | None = None, every_kimg: float = 20.0,
                 num_samples: int = 2000, seed: int = 0):
        self.args = dict(regressor=regressor_path, real=real, real_b=real_b, num_samples=num_samples, seed=seed)
        self.every_kimg = every_kimg
        self.quality: GeneratorQuality | None = None
        self.rows: list[dict[str, Any]] = []
        self.last_tick = -1
        self.disabled = False

    def _inputs_missing(self) -> str | None:
        paths = [self.args["regressor"], self.args["real"]] + ([self.args["real_b"]] if self.args["real_b"] else [])
        missing = [str(p) for p in paths if not Path(str(p)).exists()]
        return ", ".join(missing) or None

    def _evaluate(self, trainer: Trainer, module: LightningModule) -> None:
        if not trainer.is_global_zero or self.disabled:
            return
        if self.quality is None and (missing := self._inputs_missing()):
            self.disabled = True
            log.warning("generator quality is not measured: %s not found (a face regressor file and folders of real "
                        "renders from `python -m facegen.synth images`; experiments/face_world/README.md)", missing)
            return
        if self.quality is None:
            self.quality = GeneratorQuality(**self.args)
            if self.quality.real_b is not None:
                floor = {f"floor_{k}": v for k, v in self.quality.floor().items()}
                self.rows.append({"kimg": "floor", **floor})
                for logger in trainer.loggers:
                    logger.log_metrics({f"quality/{k}": v for k, v in floor.items()}, step=trainer.global_step)
        kimg = getattr(module, "cur_nimg", 0) / 1000
        metrics = self.quality(module.G_ema)
        self.rows.append({"kimg": round(kimg, 3), **metrics})
        for logger in trainer.loggers:
            logger.log_metrics({f"quality/{k}": v for k, v in metrics.items()}, step=trainer.global_step)
        write_table(self.rows, Path(trainer.default_root_dir) / "metrics" / "quality")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.last_tick = int(getattr(pl_module, "cur_nimg", 0) // (self.every_kimg * 1000))
        self._evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        tick = int(getattr(pl_module, "cur_nimg", 0) // (self.every_kimg * 1000))
        if tick > self.last_tick:
            self.last_tick = tick
            self._evaluate(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))

