"""Sample images from a StyleGAN2 generator: ``python -m facegen.generate ckpt_path=... seeds=0-63 out=...``.

The checkpoint may be a facegen Lightning checkpoint (its ``G_ema``), a rosinality ``.pt`` or an
NVlabs ``.pkl``; :func:`facegen.models.stylegan2.formats.load_generator` tells them apart by content
and never runs code from the file. As NVlabs ``generate.py``, seed ``s`` draws
``z = np.random.RandomState(s).randn(1, z_dim)``, so an imported NVlabs network gives NVlabs' images.
Writes ``seed{s:04d}.png`` per seed and ``grid.png``, tagged ``Software: facegen.generate`` (a PNG text chunk), so
that ``facegen.project`` / ``facegen.micromotion`` do not FFHQ-align them as they do real photos.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from facegen.config.cli import prepare
from facegen.config.run_folder import RunFolder, holds_nothing
from facegen.config.values import parse_seeds
from facegen.errors import FacegenError, GenerateConfigError
from facegen.faces import GENERATOR_TAG
from facegen.imaging import images_to_grid, write_png
from facegen.models.stylegan2.formats import load_generator

log = logging.getLogger("facegen.generate")
TAG = dict([GENERATOR_TAG])             # PNG text chunk: generator-made images are never FFHQ-aligned


def generate(ckpt_path: str | os.PathLike, seeds: list[int], out: str | os.PathLike, truncation_psi: float = 1.0,
             truncation_cutoff: int | None = None, noise_mode: str = "const", class_idx: int | None = None,
             grid_cols: int = 8, batch_size: int = 16, device: str = "cpu") -> list[Path]:
    """Write one PNG per seed and ``grid.png`` into ``out``; return the per-seed paths.

    Raises:
        CheckpointError: unreadable or unknown checkpoint. GenerateConfigError: a conditional generator
        without ``class_idx`` (or one out of range), or no seeds.
    """
    if not seeds:
        raise GenerateConfigError("seeds: no seeds given")
    G, _ = load_generator(ckpt_path)
    G = G.to(device)
    c = None
    if G.c_dim:
        if class_idx is None or not 0 <= class_idx < G.c_dim:
            raise GenerateConfigError(
                f"{ckpt_path}: conditional generator (c_dim={G.c_dim}); set class_idx in [0, {G.c_dim})"
            )
        c = torch.nn.functional.one_hot(torch.tensor([class_idx]), G.c_dim).float().to(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, paths = [], []
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start:start + batch_size]
        z = torch.from_numpy(np.concatenate([np.random.RandomState(s).randn(1, G.z_dim) for s in chunk]))
        with torch.no_grad():
            batch = G(z.float().to(device), None if c is None else c.expand(len(chunk), -1),
                      truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, noise_mode=noise_mode).cpu()
        for seed, image in zip(chunk, batch):
            paths.append(write_png(out / f"seed{seed:04d}.png", images_to_grid(image[None], cols=1), text=TAG))
        images.append(batch)
    grid = images_to_grid(torch.cat(images), cols=min(grid_cols, len(seeds)))
    write_png(out / "grid.png", grid, text=TAG)
    log.info("%d images and grid.png written to %s", len(paths), out.resolve())
    return paths


@hydra.main(config_path="conf", config_name="generate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        with RunFolder(cfg.out, trained=lambda: not holds_nothing(Path(cfg.out))):
            generate(cfg.ckpt_path, parse_seeds(cfg.seeds), cfg.out, truncation_psi=cfg.truncation_psi,
                     truncation_cutoff=cfg.truncation_cutoff, noise_mode=cfg.noise_mode, class_idx=cfg.class_idx,
                     grid_cols=cfg.grid_cols, batch_size=cfg.batch_size, device=cfg.device)
    except FacegenError as error:
        raise SystemExit(f"facegen.generate: {type(error).__name__}: {error}") from error


if __name__ == "__main__":
    sys.argv[1:] = prepare("generate", sys.argv[1:])
    main()
