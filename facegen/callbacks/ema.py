"""Generator-only exponential moving average with a half-life in images (Karras et al. 2018 / 2020).

Behaviour of NVlabs stylegan2-ada-pytorch ``training_loop.py``: after every minibatch of ``n`` images,
``beta = 0.5 ** (n / ema_nimg)`` with ``ema_nimg = min(ema_kimg * 1000, cur_nimg * ema_rampup)``, then
``p_ema <- p + beta * (p_ema - p)`` for parameters and ``b_ema <- b`` for buffers. Lightning's
``WeightAveraging`` averages the whole module (discriminator too) with a fixed decay, hence this callback.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from facegen.errors import FacegenError


def batch_size_of(batch: Any) -> int:
    """Number of samples in a batch: a tensor, a tuple/list whose first item is one, or a dict of tensors."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        batch = list(batch.values())
    for item in batch:
        if isinstance(item, torch.Tensor):
            return int(item.shape[0])
    raise FacegenError(f"cannot find a tensor in the batch (type {type(batch).__name__}) to count its images")


class GeneratorEMA(Callback):
    """Keep ``module.<target>`` an EMA of ``module.<source>`` (default ``G_ema`` of ``G``).

    The target is saved with the module (so it lands in checkpoints); when the module has none, a frozen
    deep copy of the source is created at ``setup``. Image count: ``module.cur_nimg`` when the module keeps
    one (StyleGAN2 does), else this callback's own count (saved in its state).

    Args:
        ema_kimg: half-life in thousands of images (NVlabs default ``batch * 10 / 32``).
        ema_rampup: during early training use ``ema_nimg = cur_nimg * ema_rampup`` when smaller (``None`` = off).
        source, target: attribute names of the trained and the averaged generator.
    Raises:
        FacegenError: at ``setup`` when the module has no ``source`` attribute.
    """

    def __init__(self, ema_kimg: float = 10.0, ema_rampup: float | None = 0.05, source: str = "G",
                 target: str = "G_ema"):
        self.ema_kimg, self.ema_rampup, self.source, self.target = ema_kimg, ema_rampup, source, target
        self.nimg = 0

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not hasattr(pl_module, self.source):
            raise FacegenError(f"GeneratorEMA: module {type(pl_module).__name__} has no attribute {self.source!r}")
        if getattr(pl_module, self.target, None) is None:
            setattr(pl_module, self.target, copy.deepcopy(getattr(pl_module, self.source)).eval().requires_grad_(False))

    def beta(self, batch_images: int, cur_nimg: int) -> float:
        """EMA decay for one minibatch of ``batch_images`` images at ``cur_nimg`` images seen."""
        ema_nimg = self.ema_kimg * 1000
        if self.ema_rampup is not None:
            ema_nimg = min(ema_nimg, cur_nimg * self.ema_rampup)
        return 0.5 ** (batch_images / max(ema_nimg, 1e-8))

    @torch.no_grad()
    def update(self, pl_module: LightningModule, beta: float) -> None:
        """Lerp every parameter of the target toward the source by ``1 - beta``; copy buffers."""
        source, target = getattr(pl_module, self.source), getattr(pl_module, self.target)
        for p_ema, p in zip(target.parameters(), source.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(target.buffers(), source.buffers()):
            b_ema.copy_(b)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        batch_images = batch_size_of(batch) * trainer.world_size
        self.nimg += batch_images
        cur_nimg = int(getattr(pl_module, "cur_nimg", self.nimg))
        self.update(pl_module, self.beta(batch_images, cur_nimg))

    def state_dict(self) -> dict[str, Any]:
        return {"nimg": self.nimg}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.nimg = int(state_dict["nimg"])
