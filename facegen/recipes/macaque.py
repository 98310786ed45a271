"""The macaque recipe (Igaue et al. 2025, "Motion Transfer-Enhanced StyleGAN for Generating Diverse Macaque
Facial Expressions", arXiv 2511.16711) as one resumable, data-agnostic pipeline.

``python -m facegen.train experiment=stylegan2_macaque data.root=<images>`` runs, under the recipe folder
``out_dir`` (``runs/<run_name>/``):

1. ``stage1_originals/``: StyleGAN2 on the original stills (``kimg`` thousand images);
2. ``augment/``: motion-transfer frames (:func:`facegen.augment.motion_transfer.augment_dataset`):
   ``dataset.zip`` (originals + frames), ``landmarks.json``, ``preview.png``;
3. ``projection/``: every pool image inverted into W under the stage-1 ``G_ema``
   (:func:`facegen.augment.selection.invert_pool`): ``latents.npy [N, w_dim]``, ``names.json``;
4. ``selection/``: an even subset of the latents (:func:`facegen.augment.selection.select_subset`):
   ``indices.npy``, ``selected.zip``, ``landmarks.json`` (the subset's), ``coverage.json``, ``coverage.png``;
5. ``ablation_augmented/`` and ``ablation_selected/`` (with ``ablation=True``): StyleGAN2 on the whole pool
   and on the subset, no region loss;
6. ``stage2_region/``: StyleGAN2 on the subset with the region loss (``stage2``: keys of ``model.region``,
   ``weight``, ``regions``; boxes from the subset's mean landmarks, :mod:`facegen.models.stylegan2.region`);
7. ``stylespace/``: StyleSpace channel scores per region, edit directions, edit and mixing grids
   (:mod:`facegen.editing.stylespace`) of the stage-2 generator;
8. ``metrics/ablation.{csv,md}``: :func:`evaluate_recipe` (also ``python -m facegen.evaluate recipe_dir=...``).

Every stage writes a ``done.json`` last; a stage whose ``done.json`` exists is skipped, and an interrupted
training stage resumes from its ``checkpoints/last.ckpt``. Every StyleGAN2 stage trains from scratch for
the same ``kimg`` so that the ablation rows differ only in their data and loss.
"""
from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from facegen.augment.motion_transfer import augment_dataset
from facegen.augment.selection import (
    fit_coverage_basis,
    invert_pool,
    plot_coverage,
    select_subset,
)
from facegen.checkpoints import load
from facegen.data.keypoints import Keypoints, load_keypoints
from facegen.editing import stylespace as ss
from facegen.editing.stylespace import region_masks
from facegen.errors import DatasetLayoutError
from facegen.recipes.macaque_table import (
    TRAINING_STAGES,
    _done,
    coverage_rows,
    evaluate_recipe,
    load_G,
    load_images,
)
from facegen.reporting import write_table
from facegen.runner import train
from facegen.utils import atomic_write

log = logging.getLogger("facegen.recipes.macaque")

def _mark_done(folder: Path, **info: Any) -> dict:
    atomic_write(folder / "done.json", json.dumps(info, indent=1, default=str))
    return info


def write_subset_zip(source_zip: Path, names: list[str], out: Path) -> Path:
    """NVlabs zip with the members ``names`` of ``source_zip`` and a matching ``dataset.json``."""
    with zipfile.ZipFile(source_zip) as src:
        labels = json.loads(src.read("dataset.json")).get("labels") if "dataset.json" in src.namelist() else None
        keep = set(names)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as dst:
            for name in names:
                dst.writestr(name, src.read(name))
            subset = [pair for pair in labels if pair[0] in keep] if labels else None
            dst.writestr("dataset.json", json.dumps({"labels": subset}))
    atomic_write(out, buffer.getvalue())
    return out


class MacaqueRecipe:
    """Stages of the macaque recipe (module docstring). Arguments are the ``recipe:`` keys of
    ``conf/experiment/stylegan2_macaque.yaml``; :meth:`run` takes the whole training config.

    Args:
        out_dir: recipe folder. kimg: training length of every StyleGAN2 stage (thousands of images; set as the
            model's ``total_kimg``, which survives a resume).
        ablation: also train the ``+ augmentation`` and ``+ selection`` rows.
        augment: keyword arguments of ``augment_dataset`` (``frames_per_still``, ``landmarks``, ``driving``,
            ``expressions``, ``template_box``, ...; ``None`` values are left at its defaults).
        projection: ``num_steps``, ``batch_size`` of ``invert_pool``; ``region_weight`` > 0 projects with
            :func:`facegen.models.stylegan2.projection.project` and the region-weighted term on ``stage2.regions``.
        selection: ``fraction`` of the pool or ``size``; ``method`` (kmeans | fps | inverse_density).
        stage2: overrides of the model's ``region`` block in the final stage (``weight``, ``regions``, ``crop``,
            ``margin``; :class:`facegen.models.stylegan2.config.RegionConfig`).
        stylespace: ``regions``, ``num_samples``, ``top_k``, ``alphas``, ``layer_ranges`` (label -> W+ indices).
        evaluation: ``num_samples``, ``inception_weights_path``, ``regressor_steps`` (:func:`evaluate_recipe`).
        seed: seeds every stage.
    """

    def __init__(self, out_dir: str | Path, kimg: float = 2.0, ablation: bool = True,
                 augment: Mapping | None = None, projection: Mapping | None = None,
                 selection: Mapping | None = None, stage2: Mapping | None = None,
                 stylespace: Mapping | None = None, evaluation: Mapping | None = None, seed: int = 0):
        self.out = Path(out_dir)
        self.kimg, self.ablation, self.seed = float(kimg), bool(ablation), int(seed)
        self.augment = {k: v for k, v in dict(augment or {}).items() if v is not None}
        self.projection = dict(projection or {})
        self.selection = dict(selection or {})
        self.stage2 = dict(stage2 or {"weight": 1.0, "regions": ["eyes"]})
        self.stylespace = dict(stylespace or {})
        self.evaluation = dict(evaluation or {})
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------ stages
    def run(self, cfg: DictConfig) -> dict[str, Any]:
        """Run (or skip) every stage; returns the ablation rows and the recipe folder."""
        self.out.mkdir(parents=True, exist_ok=True)
        root = Path(cfg.data.root).expanduser()
        if not root.exists():
            raise DatasetLayoutError(f"data.root {root} does not exist; expected a folder of face photos or an "
                                     "NVlabs zip (experiments/macaque/README.md)")
        self.resolution, self.channels = int(cfg.data.resolution), int(cfg.data.channels)
        atomic_write(self.out / "recipe.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        data = {"originals": root}
        self._timed("stage1_originals", lambda: self.train_stage(cfg, "stage1_originals", root))
        aug = self._timed("augment", lambda: self.augment_stage(root))
        data["augmented"] = Path(aug["zip_path"])
        self._timed("projection", lambda: self.projection_stage(data["augmented"]))
        sel = self._timed("selection", lambda: self.selection_stage(data["augmented"]))
        data["selected"] = Path(sel["zip_path"])
        for stage, (_, source, region) in TRAINING_STAGES.items():
            if stage.startswith("ablation") and not self.ablation or stage == "stage1_originals":
                continue
            self._timed(stage, lambda: self.train_stage(cfg, stage, data[source], region=region))
        self._timed("stylespace", self.stylespace_stage)
        rows = evaluate_recipe(self.out, seed=self.seed)
        atomic_write(self.out / "timings.json", json.dumps(self.timings, indent=1))
        return {"rows": rows, "output_dir": str(self.out)}

    def _timed(self, name: str, fn):
        start = time.perf_counter()
        result = fn()
        if not result.get("skipped"):
            self.timings[name] = round(time.perf_counter() - start, 1)
        return result

    def train_stage(self, cfg: DictConfig, stage: str, data_root: Path, region: bool = False) -> dict:
        """Train StyleGAN2 on ``data_root`` for ``kimg`` into ``out/stage`` (``facegen.train.train`` with
        ``paths.output_dir``, ``data.root``, ``model.total_kimg`` and, for the region stage, the ``stage2`` keys
        of ``model.region`` replaced)."""
        folder = self.out / stage
        if (done := _done(folder)) is not None:
            log.info("%s: done (%s), skipped", stage, folder)
            return {**done, "skipped": True}
        stage_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        stage_cfg.pop("recipe")
        stage_cfg.paths.output_dir = str(folder)
        stage_cfg.run_name = f"{cfg.get('run_name', 'macaque')}_{stage}"
        stage_cfg.data.root = str(data_root)
        stage_cfg.evaluate_after_fit = False
        if stage_cfg.model.get("region") is None:
            stage_cfg.model.region = {}
        if region:
            for key, value in self.stage2.items():
                stage_cfg.model.region[key] = value
            stage_cfg.model.region.landmarks = str(self.out / "selection" / "landmarks.json")
        else:
            stage_cfg.model.region.weight = 0.0
        stage_cfg.model.total_kimg = self.kimg
        last = folder / "checkpoints" / "last.ckpt"
        stage_cfg.ckpt_path = str(last) if last.is_file() else None
        if last.is_file():
            log.info("%s: resuming from %s", stage, last)
        stage_cfg = OmegaConf.create(OmegaConf.to_container(stage_cfg, resolve=True))
        start = time.perf_counter()
        train(stage_cfg)
        if not last.is_file():
            raise DatasetLayoutError(f"{stage}: training wrote no {last}")
        nimg = load(last).get("stylegan2_state", {}).get("cur_nimg")
        return _mark_done(folder, checkpoint=str(last), data=str(data_root), cur_nimg=nimg, region=region,
                          seconds=round(time.perf_counter() - start, 1))

    def augment_stage(self, root: Path) -> dict:
        folder = self.out / "augment"
        if (done := _done(folder)) is not None:
            return {**done, "skipped": True}
        kwargs = dict(self.augment)
        result = augment_dataset(root, folder, resolution=self.resolution, channels=self.channels,
                                 seed=self.seed, **kwargs)
        return _mark_done(folder, zip_path=str(result.zip_path), landmarks_path=str(result.landmarks_path),
                          preview_path=str(result.preview_path), n_images=result.n_images)

    def _stage1_generator(self):
        return load_G(self.out / "stage1_originals" / "checkpoints" / "last.ckpt")

    def _mean_landmarks_mask(self, landmarks_path: Path, regions) -> dict[str, torch.Tensor]:
        return region_masks(landmarks_path, list(regions), self.resolution)

    def projection_stage(self, pool_zip: Path) -> dict:
        folder = self.out / "projection"
        if (done := _done(folder)) is not None:
            return {**done, "skipped": True}
        images, names = load_images(pool_zip, self.resolution, self.channels)
        G = self._stage1_generator()
        steps, batch = int(self.projection.get("num_steps", 100)), int(self.projection.get("batch_size", 16))
        region_weight = float(self.projection.get("region_weight", 0.0))
        extra = {}
        if region_weight > 0:  # the region-weighted projection term of facegen.models.stylegan2.projection.project
            masks = self._mean_landmarks_mask(self.out / "augment" / "landmarks.json",
                                              self.stage2.get("regions", ["eyes"]))
            extra = {"region_mask": torch.stack(list(masks.values())).amax(0), "region_weight": region_weight}

        latents = invert_pool(G, images, batch_size=batch, num_steps=steps, seed=self.seed,
                              w_avg_samples=int(self.projection.get("w_avg_samples", 2000)), **extra)
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, latents.astype(np.float32))
        atomic_write(folder / "latents.npy", buffer.getvalue())
        atomic_write(folder / "names.json", json.dumps(names))
        return _mark_done(folder, n=len(names), w_dim=int(latents.shape[1]), num_steps=steps,
                          region_weight=region_weight)

    def selection_stage(self, pool_zip: Path) -> dict:
        folder = self.out / "selection"
        if (done := _done(folder)) is not None:
            return {**done, "skipped": True}
        latents = np.load(self.out / "projection" / "latents.npy")
        names = json.loads((self.out / "projection" / "names.json").read_text())
        size = self.selection.get("size") or int(round(len(names) * float(self.selection.get("fraction", 0.5))))
        size = max(1, min(int(size), len(names)))
        method = self.selection.get("method", "kmeans")
        indices = np.sort(np.asarray(select_subset(latents, size, method=method, seed=self.seed), dtype=np.int64))
        folder.mkdir(parents=True, exist_ok=True)
        chosen = [names[i] for i in indices]
        write_subset_zip(pool_zip, chosen, folder / "selected.zip")
        kp = load_keypoints(self.out / "augment" / "landmarks.json")
        Keypoints({n: kp[n] for n in chosen if n in kp}, kp.regions, kp.num_points,
                  image_size=kp.image_size).save_json(folder / "landmarks.json")
        buffer = io.BytesIO()
        np.save(buffer, indices)
        atomic_write(folder / "indices.npy", buffer.getvalue())
        coverage = coverage_rows(latents, names, indices)
        atomic_write(folder / "coverage.json", json.dumps(coverage, indent=1, default=float))
        plot_coverage(latents, indices, folder / "coverage.png", basis=fit_coverage_basis(latents),
                      title=f"{method}: {size} of {len(names)} augmented images")
        return _mark_done(folder, zip_path=str(folder / "selected.zip"), size=int(size), method=method,
                          n_pool=len(names), coverage=coverage)

    def stylespace_stage(self) -> dict:
        folder = self.out / "stylespace"
        if (done := _done(folder)) is not None:
            return {**done, "skipped": True}
        source = "stage2_region"
        G = load_G(self.out / source / "checkpoints" / "last.ckpt")
        cfg = self.stylespace
        regions = list(cfg.get("regions", ["eyes", "mouth", "brows"]))
        masks = self._mean_landmarks_mask(self.out / "selection" / "landmarks.json", regions)
        scores = ss.channel_scores(G, masks, num_samples=int(cfg.get("num_samples", 4)), seed=self.seed)
        folder.mkdir(parents=True, exist_ok=True)
        k = int(cfg.get("top_k", 5))
        ss.save_directions(folder / "directions.json", scores, k=k)
        ws = ss.sample_w_plus(G, 3, seed=self.seed + 7)
        alphas = [float(a) for a in cfg.get("alphas", [-8, -4, 0, 4, 8])]
        grids = {}
        for region in regions:
            grids[region] = str(ss.edit_grid(G, ws[:2], scores.top(region, 3), alphas,
                                             folder / f"edit_{region}.png"))
        ranges = {str(k_): [int(i) for i in v] for k_, v in (cfg.get("layer_ranges") or {}).items()
                  if max(v) < G.num_ws}
        mixing = []
        if ranges:
            source_ws = ss.sample_w_plus(G, 1, seed=self.seed + 11)
            ss.mixing_grid(G, ws, source_ws, ranges, folder / "mixing.png")
            mixing = ss.mixing_response(G, ss.sample_w_plus(G, 16, seed=self.seed + 13),
                                        ss.sample_w_plus(G, 16, seed=self.seed + 17), ranges, masks)
            write_table(mixing, folder / "mixing_response")
        top = {r: scores.top(r, k) for r in regions}
        write_table([{"region": r, "rank": i + 1, **row} for r in regions for i, row in enumerate(top[r])],
                    folder / "top_channels")
        return _mark_done(folder, generator=source, area=scores.area, grids=grids, mixing=mixing)


# ---------------------------------------------------------------------------------------------- evaluation
__all__ = ["MacaqueRecipe", "load_G", "load_images", "write_subset_zip"]
