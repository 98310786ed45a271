"""Sample images from a StyleGAN2 generator: ``python -m facegen.generate ckpt_path=... seeds=0-63 out=...``.

The checkpoint may be a facegen Lightning checkpoint (its ``G_ema``), a rosinality ``.pt`` or an
NVlabs ``.pkl``; :func:`facegen.models.stylegan2.checkpoints.load_generator` tells them apart by content
and never runs code from the file. As NVlabs ``generate.py``, seed ``s`` draws
``z = np.random.RandomState(s).randn(1, z_dim)``, so an imported NVlabs network gives NVlabs' images.
Writes ``seed{s:04d}.png`` per seed and ``grid.png``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
import imageio.v3 as iio
import numpy as np
import torch
from omegaconf import DictConfig, ListConfig

from facegen.callbacks.image_grid import images_to_grid
from facegen.errors import GenerateConfigError
from facegen.models.stylegan2.checkpoints import load_generator
from facegen.utils import atomic_write

log = logging.getLogger("facegen.generate")


def parse_seeds(seeds: str | int | list | ListConfig) -> list[int]:
    """``"0-63"`` -> 0..63, ``"1,5,9"`` -> [1, 5, 9], mixed ``"0-3,10"``, a list or a single int.

    Raises:
        GenerateConfigError: a part is not an integer or a ``lo-hi`` range with ``lo <= hi``.
    """
    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, (list, tuple, ListConfig)):
        return [s for part in seeds for s in parse_seeds(part)]
    result: list[int] = []
    for part in str(seeds).replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise GenerateConfigError(
                f"seeds: cannot parse {part!r} in {seeds!r}; use '0-63', '1,5,9' or [1,5,9]"
            ) from None
        if last < first:
            raise GenerateConfigError(f"seeds: range {part!r} ends before it starts")
        result += range(first, last + 1)
    return result


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
            picture = images_to_grid(image[None], cols=1)
            paths.append(out / f"seed{seed:04d}.png")
            atomic_write(paths[-1], iio.imwrite("<bytes>", picture, extension=".png"))
        images.append(batch)
    grid = images_to_grid(torch.cat(images), cols=min(grid_cols, len(seeds)))
    atomic_write(out / "grid.png", iio.imwrite("<bytes>", grid, extension=".png"))
    log.info("%d images and grid.png written to %s", len(paths), out.resolve())
    return paths


@hydra.main(config_path="conf", config_name="generate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    generate(cfg.ckpt_path, parse_seeds(cfg.seeds), cfg.out, truncation_psi=cfg.truncation_psi,
             truncation_cutoff=cfg.truncation_cutoff, noise_mode=cfg.noise_mode, class_idx=cfg.class_idx,
             grid_cols=cfg.grid_cols, batch_size=cfg.batch_size, device=cfg.device)


if __name__ == "__main__":
    main()
