"""StyleGAN2-ADA training recipe as a LightningModule (NVlabs stylegan2-ada-pytorch ``training_loop.py``).

Per minibatch, with manual optimisation, four phases as NVlabs: G main (non-saturating loss), G reg
(path length, every ``pl_interval`` minibatches), D main (logistic loss) and D reg (R1, every
``r1_interval``). Lazy regularisation (StyleGAN2 sec. 3.1, appendix B): the regulariser's loss is
multiplied by its interval and Adam's ``lr`` and ``betas`` are corrected by ``mb_ratio = k / (k + 1)``.
Schedules (EMA, ADA, kimg) count images seen, ``cur_nimg``, never ``trainer.global_step`` (which counts
each optimiser step). Batches: ``dict(image=[B, C, R, R] in [-1, 1], c=[B, c_dim])`` (``c`` optional), a
tuple ``(image, c)`` or a bare image tensor.

Optional region loss (Igaue et al. 2025, "loss function refinement" for subtle movements such as the
eyes; :mod:`facegen.models.stylegan2.region`): with ``region_weight > 0`` the module owns
``region_D``, one small discriminator per landmark region (``regions``, default eyes) on crops at the
dataset's mean-landmark boxes. It adds ``region_weight * RegionDiscriminators.generator_loss(fake)`` to the
G main loss, ``region_weight * discriminator_loss(real, fake)`` to the D main loss and the region
discriminators' R1 to the R1 phase; ``region_D`` is stepped by the D optimiser. ``region_weight = 0``
(default) creates nothing and trains exactly as without the option.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import torch
from lightning.pytorch import Callback, LightningModule

from facegen.callbacks.ema import GeneratorEMA
from facegen.callbacks.image_grid import ImageGrid
from facegen.data.keypoints import DEFAULT_TEMPLATE_BOX, mean_template
from facegen.errors import FacegenError
from facegen.models.gan import grad_scaler, guarded_step, r1_penalty
from facegen.models.stylegan2.ada import AdaptiveP, AugmentPipe
from facegen.models.stylegan2.losses import (
    discriminator_loss,
    generator_loss,
    mix_styles,
    path_length_penalty,
)
from facegen.models.stylegan2.networks import Discriminator, Generator
from facegen.models.stylegan2.region import RegionDiscriminators, region_boxes


class StyleGAN2(LightningModule):
    """StyleGAN2 with ADA (Karras et al. 2020a, 2020b).

    Networks: ``G`` (trained), ``G_ema`` (EMA of ``G``; sampling and checkpoints), ``D``, ``augment_pipe``.

    Args:
        img_resolution, img_channels, c_dim: from ``ImageDataModule.model_kwargs()``.
        z_dim, w_dim, mapping_layers, channel_base, channel_max: :class:`Generator` / :class:`Discriminator` sizes.
        num_fp16_res: highest resolutions run in the autocast dtype under ``16-mixed``/``bf16-mixed`` (NVlabs: 4).
        conv_clamp: conv output clamp (NVlabs: 256); ``None`` = none.
        mbstd_group_size: minibatch-stddev group size.
        lr, betas: Adam (0.0025, (0, 0.99)) before the lazy-regularisation correction.
        r1_gamma, r1_interval: R1 weight (NVlabs heuristic ``0.0002 * R^2 / batch``) and its interval (16).
        pl_weight, pl_interval, pl_decay, pl_batch_shrink: path-length regularisation (2, 4, 0.01, 2).
        style_mixing_prob: probability of style mixing per G minibatch (0.9).
        augment_pipeline: ADA pipeline name (``"bgc"``) or ``None`` for no augmentation.
        augment_p: initial (or, with ``ada_target=None``, fixed) augmentation probability.
        ada_target, ada_interval, ada_kimg: ADA controller (0.6, 4 minibatches, 500 kimg per unit of p).
        ema_kimg, ema_rampup: generator EMA half-life in kimg and ramp-up (see :class:`GeneratorEMA`).
        grid_every_kimg, grid_rows, grid_cols, grid_seed, grid_truncation_psi: sample grids (:class:`ImageGrid`).
        region_weight: weight of the region loss (0 = off, no region networks).
        regions: landmark regions with their own discriminator (``eyes``, ``mouth``, ``brows``, ...).
        region_landmarks: landmarks file (CSV/JSON, ``facegen.data.keypoints.load_keypoints``; the mean over
            its images places the boxes) or ``None`` for ``mean_template(img_resolution, region_template_box)``.
        region_template_box: template box ``(left, top, right, bottom)`` fractions (``None`` = the default box).
        region_crop, region_margin: crop side in pixels and box margin (fraction of the region's size).
    """

    def __init__(self, img_resolution: int = 64, img_channels: int = 3, c_dim: int = 0, z_dim: int = 512,
                 w_dim: int = 512, mapping_layers: int = 8, channel_base: int = 32768, channel_max: int = 512,
                 num_fp16_res: int = 4, conv_clamp: float | None = 256, mbstd_group_size: int = 4,
                 lr: float = 0.0025, betas: Sequence[float] = (0.0, 0.99), r1_gamma: float = 10.0,
                 r1_interval: int = 16, pl_weight: float = 2.0, pl_interval: int = 4, pl_decay: float = 0.01,
                 pl_batch_shrink: int = 2, style_mixing_prob: float = 0.9, augment_pipeline: str | None = "bgc",
                 augment_p: float = 0.0, ada_target: float | None = 0.6, ada_interval: int = 4,
                 ada_kimg: float = 500.0, ema_kimg: float = 10.0, ema_rampup: float | None = 0.05,
                 grid_every_kimg: float = 50.0, grid_rows: int = 4, grid_cols: int = 4, grid_seed: int = 0,
                 grid_truncation_psi: float = 1.0, region_weight: float = 0.0, regions: Sequence[str] = ("eyes",),
                 region_landmarks: str | None = None, region_template_box: Sequence[float] | None = None,
                 region_crop: int = 16, region_margin: float = 0.25):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.G = Generator(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                           img_channels=img_channels, mapping_layers=mapping_layers, channel_base=channel_base,
                           channel_max=channel_max, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp)
        self.D = Discriminator(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
                               channel_base=channel_base, channel_max=channel_max, mbstd_group_size=mbstd_group_size,
                               num_fp16_res=num_fp16_res, conv_clamp=conv_clamp)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.augment_pipe = AugmentPipe(augment_pipeline, p=augment_p) if augment_pipeline else None
        self.ada = (AdaptiveP(self.augment_pipe, ada_target, ada_interval, ada_kimg)
                    if self.augment_pipe is not None and ada_target is not None else None)
        self.region_D = self._build_region_D() if region_weight > 0 else None
        self.register_buffer("pl_mean", torch.zeros([]))
        self.cur_nimg = 0
        self.num_batches = 0
        self.skipped_steps = 0

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: Any = "cpu") -> "StyleGAN2":
        """Re-create the module (weights, ``cur_nimg``, ADA p) from a Lightning checkpoint alone."""
        return cls.load_from_checkpoint(str(path), map_location=map_location)

    def _build_region_D(self) -> RegionDiscriminators:
        """Region discriminators at boxes from ``region_landmarks`` (or the mean template)."""
        hp = self.hparams
        landmarks = hp.region_landmarks
        if landmarks is None:
            landmarks = mean_template(hp.img_resolution, box=hp.region_template_box or DEFAULT_TEMPLATE_BOX)
        boxes = region_boxes(landmarks, list(hp.regions), hp.img_resolution, margin=hp.region_margin)
        return RegionDiscriminators(boxes, hp.img_channels, crop_size=hp.region_crop, channel_base=hp.channel_base,
                                    channel_max=hp.channel_max, mbstd_group_size=hp.mbstd_group_size)

    # ---------------------------------------------------------------- pieces of the recipe
    @property
    def ada_p(self) -> float:
        """Current ADA augmentation probability (0 without augmentation)."""
        return float(self.augment_pipe.p) if self.augment_pipe is not None else 0.0

    def run_G(self, z: torch.Tensor, c: torch.Tensor | None, update_w_avg: bool = True):
        """Generate with style mixing and random noise: ``(images [B, C, R, R], ws [B, num_ws, w_dim])``."""
        ws = self.G.mapping(z, c, update_w_avg=update_w_avg)
        ws = mix_styles(self.G.mapping, z, c, ws, self.hparams.style_mixing_prob)
        return self.G.synthesis(ws, noise_mode="random"), ws

    def run_D(self, images: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Augment (ADA) and discriminate: logits ``[B, 1]``."""
        if self.augment_pipe is not None:
            images = self.augment_pipe(images)
        return self.D(images, c)

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(batch, dict):
            images, c = batch["image"], batch.get("c")
        elif isinstance(batch, (tuple, list)):
            images, c = batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            images, c = batch, None
        if images.ndim != 4 or images.shape[1:] != (self.G.img_channels, self.G.img_resolution, self.G.img_resolution):
            raise FacegenError(f"StyleGAN2 batch images must be [B, {self.G.img_channels}, {self.G.img_resolution}, "
                               f"{self.G.img_resolution}] in [-1, 1], got {list(images.shape)}")
        if self.G.c_dim == 0:
            return images.float(), None
        if c is None or c.shape[-1] != self.G.c_dim:
            raise FacegenError(f"StyleGAN2 with c_dim={self.G.c_dim} needs batch['c'] [B, {self.G.c_dim}], "
                               f"got {None if c is None else list(c.shape)}")
        return images.float(), c.float()

    def _step(self, optimizer, loss: torch.Tensor, *modules: torch.nn.Module | None) -> None:
        """Backward and optimiser step under facegen's non-finite policy (:func:`facegen.models.gan.guarded_step`);
        a skipped step is counted in ``skipped_steps``."""
        if not guarded_step(self, optimizer, loss, *modules):
            self.skipped_steps += 1

    def _sample_c(self, c: torch.Tensor | None) -> torch.Tensor | None:
        """Labels for generated images: the real batch's labels, shuffled (the data's label distribution)."""
        return None if c is None else c[torch.randperm(c.shape[0], device=c.device)]

    # ---------------------------------------------------------------- Lightning hooks
    def training_step(self, batch: Any, batch_idx: int) -> None:
        real, c = self._unpack(batch)
        batch_size = real.shape[0]
        opt_g, opt_d = self.optimizers()
        hp = self.hparams
        do_pl = hp.pl_weight > 0 and self.num_batches % hp.pl_interval == 0
        do_r1 = hp.r1_gamma > 0 and self.num_batches % hp.r1_interval == 0
        z_dim = self.G.z_dim

        self.toggle_optimizer(opt_g)
        gen_c = self._sample_c(c)
        fake, _ = self.run_G(torch.randn(batch_size, z_dim, device=self.device), gen_c)
        loss_g = generator_loss(self.run_D(fake, gen_c))
        if self.region_D is not None:
            loss_region = self.region_D.generator_loss(fake)
            loss_g = loss_g + hp.region_weight * loss_region
            self.log("train/loss_G_region", loss_region.detach())
        self._step(opt_g, loss_g, self.G)
        self.log("train/loss_G", loss_g.detach(), prog_bar=True)
        if do_pl:
            n = max(batch_size // hp.pl_batch_shrink, 1)
            pl_c = None if gen_c is None else gen_c[:n]
            fake, ws = self.run_G(torch.randn(n, z_dim, device=self.device), pl_c)
            penalty, pl_mean = path_length_penalty(fake, ws, self.pl_mean, hp.pl_decay, grad_scaler(self))
            self.pl_mean.copy_(pl_mean)
            loss_pl = (fake[:, 0, 0, 0] * 0 + penalty * hp.pl_weight).mean() * hp.pl_interval
            self._step(opt_g, loss_pl, self.G)
            self.log("train/pl", penalty.detach().mean())
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)
        gen_c = self._sample_c(c)
        with torch.no_grad():
            fake, _ = self.run_G(torch.randn(batch_size, z_dim, device=self.device), gen_c)
        fake_logits = self.run_D(fake, gen_c)
        real_logits = self.run_D(real, c)
        if self.ada is not None:
            self.ada.accumulate(real_logits)
        loss_d = discriminator_loss(real_logits, fake_logits)
        if self.region_D is not None:
            loss_region = self.region_D.discriminator_loss(real, fake)
            loss_d = loss_d + hp.region_weight * loss_region
            self.log("train/loss_D_region", loss_region.detach())
        self._step(opt_d, loss_d, self.D, self.region_D)
        self.log("train/loss_D", loss_d.detach(), prog_bar=True)
        if do_r1:
            real_tmp = real.detach().requires_grad_(True)
            logits = self.run_D(real_tmp, c)
            penalty = r1_penalty(real_tmp, logits, grad_scaler(self))
            if self.region_D is not None:
                penalty = penalty + hp.region_weight * self.region_D.r1_penalty(real_tmp, grad_scaler(self))
            loss_r1 = (logits[:, 0] * 0 + penalty * (hp.r1_gamma / 2)).mean() * hp.r1_interval
            self._step(opt_d, loss_r1, self.D, self.region_D)
            self.log("train/r1", penalty.detach().mean())
        self.untoggle_optimizer(opt_d)

        images_seen = batch_size * self.trainer.world_size
        if self.ada is not None and self.num_batches % hp.ada_interval == 0:
            self.ada.adjust(images_seen, reduce=lambda t: self.trainer.strategy.reduce(t, reduce_op="sum"))
        self.num_batches += 1
        self.cur_nimg += images_seen
        self.log("train/ada_p", self.ada_p)
        self.log("train/kimg", self.cur_nimg / 1000)

    def configure_optimizers(self):
        """Adam for G and D with the lazy-regularisation correction ``lr * r``, ``betas ** r``,
        ``r = k / (k + 1)`` for regularisation interval ``k`` (only when that regulariser is on)."""
        hp = self.hparams

        def adam(params, interval: int, enabled: bool):
            ratio = interval / (interval + 1) if enabled else 1.0
            betas = tuple(float(b) ** ratio for b in hp.betas)
            return torch.optim.Adam(params, lr=hp.lr * ratio, betas=betas, eps=1e-8)

        return [adam(self.G.parameters(), hp.pl_interval, hp.pl_weight > 0),
                adam(list(self.D.parameters()) + (list(self.region_D.parameters()) if self.region_D else []),
                     hp.r1_interval, hp.r1_gamma > 0)]

    def configure_callbacks(self) -> list[Callback]:
        """Generator EMA (``G_ema``) and sample grids, configured by this module's hyperparameters."""
        hp = self.hparams
        return [GeneratorEMA(ema_kimg=hp.ema_kimg, ema_rampup=hp.ema_rampup),
                ImageGrid(every_kimg=hp.grid_every_kimg, rows=hp.grid_rows, cols=hp.grid_cols, seed=hp.grid_seed,
                          truncation_psi=hp.grid_truncation_psi)]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["stylegan2_state"] = {"cur_nimg": self.cur_nimg, "num_batches": self.num_batches,
                                         "ada_p": self.ada_p}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("stylegan2_state")
        if state is None:
            return
        self.cur_nimg, self.num_batches = int(state["cur_nimg"]), int(state["num_batches"])
        if self.augment_pipe is not None:
            self.augment_pipe.p.fill_(float(state["ada_p"]))

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, truncation_psi: float = 1.0, c: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` images ``[n, C, R, R]`` in about [-1, 1] from ``G_ema`` with seeded latents."""
        z = torch.randn([n, self.G_ema.z_dim], generator=torch.Generator().manual_seed(seed)).to(self.device)
        was_training = self.G_ema.training
        self.G_ema.eval()
        try:
            return self.G_ema(z, c, truncation_psi=truncation_psi)
        finally:
            self.G_ema.train(was_training)
