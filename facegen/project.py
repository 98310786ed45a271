"""Project images into a StyleGAN2 latent space: ``python -m facegen.project ckpt_path=... target=img.png out=...``.

``target`` is an image or a folder of images, projected ``batch_size`` at a time with
:func:`facegen.models.stylegan2.projection.project` (NVlabs projector schedule, W or W+). Per image ``<name>``
it writes ``<out>/<name>.npz`` (``w_plus [1, num_ws, w_dim]``, ``w [1, w_dim]`` in W mode, noise maps)
and ``<out>/<name>.png``; ``<out>/loss_curve.csv`` holds the image distance per step and image.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from facegen.config.cli import prepare
from facegen.config.run_folder import RunFolder, holds_nothing
from facegen.errors import FacegenError
from facegen.imaging import list_images
from facegen.models.stylegan2.formats import load_generator
from facegen.models.stylegan2.projection import (
    load_targets,
    make_projection_loss,
    project,
    save_projection,
)
from facegen.utils import atomic_write

log = logging.getLogger("facegen.project")

def run(cfg: DictConfig) -> dict[str, torch.Tensor]:
    """Project every target of ``cfg``; return ``{image name: loss curve [num_steps]}``."""
    G, _ = load_generator(cfg.ckpt_path)
    G = G.to(cfg.device)
    loss_fn = make_projection_loss(cfg.loss.vgg16_path, cfg.loss.lpips_path, l1_weight=cfg.loss.l1_weight,
                                   l2_weight=cfg.loss.l2_weight, ms_ssim_weight=cfg.loss.ms_ssim_weight)
    files = list_images(cfg.target)
    curves: dict[str, torch.Tensor] = {}
    for start in range(0, len(files), cfg.batch_size):
        batch = files[start:start + cfg.batch_size]
        targets = load_targets(batch, G.img_resolution, G.img_channels).to(cfg.device)
        result = project(G, targets, loss_fn, latent_space=cfg.latent_space, seed=cfg.seed + start, **cfg.schedule)
        save_projection(result, cfg.out, [p.stem for p in batch])
        curves.update({p.stem: result.loss_curve[:, i] for i, p in enumerate(batch)})
        log.info("projected %d/%d images, final distance %s", start + len(batch), len(files),
                 [round(float(v), 4) for v in result.loss_curve[-1]])
    names = list(curves)
    rows = ["step," + ",".join(names)]
    for step in range(cfg.schedule.num_steps):
        rows.append(f"{step}," + ",".join(f"{float(curves[n][step]):.6g}" for n in names))
    atomic_write(Path(cfg.out) / "loss_curve.csv", "\n".join(rows) + "\n")
    return curves


@hydra.main(config_path="conf", config_name="project", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        with RunFolder(cfg.out, trained=lambda: not holds_nothing(Path(cfg.out))):
            run(cfg)
    except FacegenError as error:
        raise SystemExit(f"facegen.project: {type(error).__name__}: {error}") from error


if __name__ == "__main__":
    sys.argv[1:] = prepare("project", sys.argv[1:])
    main()
