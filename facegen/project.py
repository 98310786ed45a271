"""Project images into a StyleGAN2 latent space: ``python -m facegen.project ckpt_path=... target=img.png out=...``.

``target`` is an image or a folder of images, projected ``batch_size`` at a time with
:func:`facegen.models.stylegan2.projection.project` (NVlabs projector schedule, W or W+). Real photos are
FFHQ-aligned first (``align=true``, the default: :func:`facegen.faces.prepare_photos`, dlib's landmarks and the
NVlabs ffhq-dataset recipe; images ``facegen.generate`` wrote are not aligned; the log says what was done to each).
Per image ``<name>`` it writes ``<out>/<name>.npz`` (``w_plus [1, num_ws, w_dim]``, ``w [1, w_dim]`` in W mode,
noise maps), ``<out>/<name>.png`` and, when aligned, the aligned target ``<out>/aligned/<name>.png``;
``<out>/loss_curve.csv`` holds the image distance per step and image.
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
from facegen.faces import prepare_photos, to_targets
from facegen.imaging import list_images, write_png
from facegen.models.stylegan2.formats import load_generator
from facegen.models.stylegan2.projection import (
    load_targets,
    make_projection_loss,
    project,
    save_projection,
)
from facegen.utils import atomic_write

log = logging.getLogger("facegen.project")


def load_photo_targets(files: list[Path], G, align: bool, no_face: str, out: Path, logger: logging.Logger):
    """Targets ``[B, C, R, R]`` in [-1, 1] at the generator's resolution: FFHQ-aligned photos (``align``) or, as
    before, their centre squares (:func:`load_targets`); aligned crops are written to ``<out>/aligned/``."""
    if not align:
        logger.info("align=false: %d target(s) used as their centre squares", len(files))
        return load_targets(files, G.img_resolution, G.img_channels)
    photos = prepare_photos(files, G.img_resolution, align=True, no_face=no_face)
    for photo in photos:
        logger.info("%s", photo.note)
        if photo.aligned:
            write_png(out / "aligned" / f"{photo.path.stem}.png", photo.picture)
    return to_targets(photos, G.img_channels)


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
        targets = load_photo_targets(batch, G, cfg.align, cfg.align_no_face, Path(cfg.out), log).to(cfg.device)
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
