"""Fixed-seed sample grids of a GAN generator during training (NVlabs ``fakes*.png``).

Every ``every_kimg`` thousand images (and at the start of fitting) the generator (``G_ema`` by default)
renders the same latents; the grid is written to ``<run_dir>/pictures/<key>/<step>_0.png`` and sent to the
loggers through :func:`facegen.reporting.log_images`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from facegen.callbacks.ema import batch_size_of
from facegen.imaging import images_to_grid
from facegen.reporting import log_images


class ImageGrid(Callback):
    """Sample grid from ``module.<generator>`` every ``every_kimg`` thousand images.

    The generator is called as ``G(z, c, truncation_psi=..., noise_mode="const")`` in eval mode (so its
    ``w_avg`` does not move) and must expose ``z_dim`` and ``c_dim``; labelled generators get classes
    ``i % c_dim`` one-hot, one per image. Images seen: ``module.cur_nimg`` when present, else counted here.

    Args:
        every_kimg: interval in thousands of images (0 = only at the start of fitting).
        rows, cols: grid size; seed: seed of the fixed latents; truncation_psi: truncation of the samples.
        generator: attribute name on the module (falls back to ``G`` when absent); key: picture folder/log key.
    """

    def __init__(self, every_kimg: float = 50.0, rows: int = 4, cols: int = 4, seed: int = 0,
                 truncation_psi: float = 1.0, generator: str = "G_ema", key: str = "samples"):
        self.every_kimg, self.rows, self.cols, self.seed = every_kimg, rows, cols, seed
        self.truncation_psi, self.generator, self.key = truncation_psi, generator, key
        self.nimg = 0
        self.last_tick = -1

    @torch.no_grad()
    def render(self, pl_module: LightningModule) -> np.ndarray:
        """The grid as uint8 ``[rows*H, cols*W, 3]`` (``[.., ..]`` for greyscale)."""
        G = getattr(pl_module, self.generator, None)
        G = pl_module.G if G is None else G
        n = self.rows * self.cols
        device = next(G.parameters()).device
        z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(self.seed)).to(device)
        c = None
        if G.c_dim > 0:
            c = torch.nn.functional.one_hot(torch.arange(n) % G.c_dim, G.c_dim).float().to(device)
        was_training = G.training
        G.eval()
        try:
            images = torch.cat([G(z[i:i + 8], None if c is None else c[i:i + 8], truncation_psi=self.truncation_psi,
                                  noise_mode="const") for i in range(0, n, 8)])
        finally:
            G.train(was_training)
        return images_to_grid(images, self.cols)

    def _cur_nimg(self, pl_module: LightningModule) -> int:
        return int(getattr(pl_module, "cur_nimg", self.nimg))

    def _emit(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        kimg = self._cur_nimg(pl_module) / 1000
        grid = self.render(pl_module)
        log_images(trainer, self.key, [grid], captions=[f"{kimg:.1f} kimg, psi {self.truncation_psi}"],
                   step=trainer.global_step)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.last_tick = self._tick(pl_module)
        self._emit(trainer, pl_module)

    def _tick(self, pl_module: LightningModule) -> int:
        if self.every_kimg <= 0:
            return 0
        return int(self._cur_nimg(pl_module) // (self.every_kimg * 1000))

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.nimg += batch_size_of(batch) * trainer.world_size
        tick = self._tick(pl_module)
        if tick > self.last_tick:
            self.last_tick = tick
            self._emit(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"nimg": self.nimg}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.nimg = int(state_dict["nimg"])
