"""The macaque recipe's ablation table (Igaue et al. 2025, Table 2): one row per training stage of a finished
recipe folder, with FID/KID of the samples against the stills, latent coverage and expression diversity.

``python -m facegen.evaluate recipe_dir=runs/stylegan2_macaque`` writes it (also written by the recipe's last stage).
"""
from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import torch
from omegaconf import OmegaConf

from facegen.augment.selection import fit_coverage_basis, latent_coverage
from facegen.data.images import ImageDataModule
from facegen.data.keypoints import load_keypoints
from facegen.errors import DatasetLayoutError
from facegen.imaging import images_to_grid
from facegen.metrics.fid import FidKid
from facegen.models.stylegan2.formats import load_generator
from facegen.recipes.expression import (
    expression_diversity,
    fit_landmark_regressor,
    predict_landmarks,
)
from facegen.reporting import write_table
from facegen.utils import atomic_write

log = logging.getLogger("facegen.recipes.macaque")

TRAINING_STAGES = {  # folder -> (ablation row, training data, region loss)
    "stage1_originals": ("originals only", "originals", False),
    "ablation_augmented": ("+ augmentation", "augmented", False),
    "ablation_selected": ("+ selection", "selected", False),
    "stage2_region": ("+ region loss", "selected", True),
}
FRAME = re.compile(r"_mt\d+\.png$")


def load_G(ckpt: Path):
    """``G_ema`` (eval, frozen) of a recipe stage's checkpoint (``load_generator``, restricted unpickling)."""
    return load_generator(ckpt)[0].eval().requires_grad_(False)


def _done(folder: Path) -> dict | None:
    path = folder / "done.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_images(root: Path, resolution: int, channels: int) -> tuple[torch.Tensor, list[str]]:
    """All images of a folder or zip as ``[N, C, R, R]`` in [-1, 1] with their names (ImageDataModule decoding)."""
    dm = ImageDataModule(root, resolution=resolution, channels=channels)
    dm.setup("fit")
    data = dm.train_set
    images = torch.stack([data[i]["image"] for i in range(len(data))])
    return images, [r.name for r in data.records]


def coverage_rows(latents: np.ndarray, names: list[str], selected: np.ndarray) -> dict[str, dict]:
    """Latent coverage (``facegen.augment.selection.latent_coverage``) of the originals, the pool and the
    selection, all in the pool's PCA basis so that the numbers compare."""
    originals = np.array([i for i, n in enumerate(names) if not FRAME.search(n)], dtype=np.int64)
    sets = {"originals": originals, "augmented": np.arange(len(names)), "selected": np.asarray(selected)}
    basis = fit_coverage_basis(latents)
    return {key: {k: v for k, v in latent_coverage(latents[idx], basis=basis).items() if np.isscalar(v)}
            for key, idx in sets.items() if len(idx)}


@torch.no_grad()
def _samples(G, n: int, seed: int, batch: int = 64) -> torch.Tensor:
    z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(seed))
    return torch.cat([G(z[i:i + batch], None, noise_mode="const").clamp(-1, 1) for i in range(0, n, batch)])


def evaluate_recipe(out_dir: str | Path, **overrides: Any) -> list[dict]:
    """The ablation table of a recipe folder: one row per trained stage that exists.

    Settings (``num_samples`` 256, ``inception_weights_path`` None, ``regressor_steps`` 400, ``seed`` 0) come
    from the folder's ``recipe.yaml`` (``recipe.evaluation``), then from ``overrides``.

    Columns: FID/KID of ``num_samples`` ``G_ema`` samples against the original stills
    (:class:`facegen.metrics.fid.FidKid`: Inception with ``inception_weights_path``, else the labelled
    random-feature ``*_randfeat`` values), the latent coverage of the row's training set (stage-1 W, 8x8 grid
    of the pool's PCA-2D plane: ``coverage_occupancy`` = occupied cells, ``coverage_evenness`` = normalised
    entropy of the cell histogram, :func:`coverage_rows`) and the expression diversity of the samples
    (:mod:`facegen.recipes.expression`: landmark regressor fitted on the augmented pool). Reference rows give
    the same diversity for the real originals and the augmented pool. Writes ``metrics/ablation.{csv,md}``
    and ``pictures/samples_<stage>.png``; returns the rows.
    """
    out = Path(out_dir)
    recipe = OmegaConf.load(out / "recipe.yaml") if (out / "recipe.yaml").is_file() else None
    if recipe is None or not (out / "stage1_originals" / "done.json").is_file():
        raise DatasetLayoutError(f"{out} is not a finished macaque recipe folder (no recipe.yaml or "
                                 "stage1_originals/done.json); run "
                                 "python -m facegen.train experiment=stylegan2_macaque data.root=<photos>")
    settings = {"num_samples": 256, "inception_weights_path": None, "regressor_steps": 400, "seed": 0,
                **OmegaConf.to_container(recipe.get("recipe", {}).get("evaluation") or OmegaConf.create({})),
                **overrides}
    num_samples, seed = int(settings["num_samples"]), int(settings["seed"])
    inception_weights_path, regressor_steps = settings["inception_weights_path"], int(settings["regressor_steps"])
    resolution, channels = int(recipe.data.resolution), int(recipe.data.channels)
    reals, _ = load_images(Path(recipe.data.root).expanduser(), resolution, channels)
    pool_zip = out / "augment" / "dataset.zip"
    pool, pool_names = load_images(pool_zip, resolution, channels)
    kp = load_keypoints(out / "augment" / "landmarks.json")
    marks = torch.tensor(np.stack([kp[n] for n in pool_names]), dtype=torch.float32)
    fit = fit_landmark_regressor(pool, marks, steps=regressor_steps, seed=seed)
    originals = [i for i, n in enumerate(pool_names) if not FRAME.search(n)]
    template = marks[originals].mean(0).numpy() if originals else marks.mean(0).numpy()
    coverage = json.loads((out / "selection" / "coverage.json").read_text()) \
        if (out / "selection" / "coverage.json").is_file() else {}

    def coverage_of(source: str) -> dict:  # occupancy and evenness (normalised entropy) of the PCA-2D grid
        cov = coverage.get(source, {})
        keys = {"occupancy": "coverage_occupancy", "entropy_normalised": "coverage_evenness"}
        return {name: round(float(cov[k]), 4) for k, name in keys.items() if k in cov}

    rows = []
    for stage, (label, source, region) in TRAINING_STAGES.items():
        ckpt = out / stage / "checkpoints" / "last.ckpt"
        if not (out / stage / "done.json").is_file():
            continue
        fakes = _samples(load_G(ckpt), num_samples, seed=seed)
        metric = FidKid(inception_weights_path, kid_subset_size=min(100, len(reals), num_samples))
        for i in range(0, len(reals), 64):
            metric.update(reals[i:i + 64], real=True)
        for i in range(0, len(fakes), 64):
            metric.update(fakes[i:i + 64], real=False)
        scores = {k: round(v, 4) for k, v in metric.compute().items()}
        diversity = expression_diversity(predict_landmarks(fit.model, fakes), template)
        done = _done(out / stage)
        rows.append({"row": label, "stage": stage, "train_images": _count(Path(done["data"])),
                     "region_loss": region, "kimg": round((done.get("cur_nimg") or 0) / 1000, 2), **scores,
                     **coverage_of(source), **{k: round(v, 4) for k, v in diversity.items()}})
        grid = images_to_grid(fakes[:32], 8)
        (out / "pictures").mkdir(parents=True, exist_ok=True)
        atomic_write(out / "pictures" / f"samples_{stage}.png", iio.imwrite("<bytes>", grid, extension=".png"))
    for label, images in (("real originals (reference)", reals), ("augmented pool (reference)", pool)):
        diversity = expression_diversity(predict_landmarks(fit.model, images), template)
        rows.append({"row": label, "train_images": len(images), **{k: round(v, 4) for k, v in diversity.items()}})
    for row in rows:
        row["regressor_error_px"] = round(fit.val_error_px, 3)
    write_table(rows, out / "metrics" / "ablation")
    log.info("ablation table written to %s", out / "metrics" / "ablation.md")
    return rows


def _count(root: Path) -> int:
    if root.is_file() and zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as z:
            return sum(1 for n in z.namelist() if n.endswith(".png"))
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


__all__ = ["TRAINING_STAGES", "evaluate_recipe", "load_G", "load_images"]
