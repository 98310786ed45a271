"""StyleGAN2-ADA training recipe as a LightningModule (NVlabs stylegan2-ada-pytorch ``training_loop.py``).

Per minibatch, with manual optimisation, four phases as NVlabs: G main (non-saturating loss), G reg
(path length, every ``loss.pl_interval`` minibatches), D main (logistic loss) and D reg (R1, every
``loss.r1_interval``). Lazy regularisation (StyleGAN2 sec. 3.1, appendix B): the regulariser's loss is
multiplied by its interval and Adam's ``lr`` and ``betas`` are corrected by ``mb_ratio = k / (k + 1)``.

Training length: schedules (EMA, ADA, grids, ``total_kimg``) count images seen, ``cur_nimg`` (all processes),
as NVlabs ``--kimg``. ``total_kimg`` stops fitting once ``cur_nimg >= total_kimg * 1000`` (checked after every
minibatch and at the start of a resumed fit). Lightning's ``trainer.max_steps`` counts *optimiser steps*
(``trainer.global_step``): 2 to 4 per minibatch here (G, D, and the lazy path-length and R1 steps), so it is
not a number of minibatches or images; ``trainer.max_epochs`` still applies (whichever limit comes first
stops; ``trainer.min_epochs``/``min_steps`` delay a ``total_kimg`` stop until they are met).

Batches: ``dict(image=[B, C, R, R] in [-1, 1], c=[B, c_dim])`` (``c`` optional), a tuple ``(image, c)`` or a
bare image tensor.

Optional region loss (Igaue et al. 2025, "loss function refinement" for subtle movements such as the
eyes; :mod:`facegen.models.stylegan2.region`): with ``region.weight > 0`` the module owns ``region_D``, one
small discriminator per landmark region (``region.regions``, default eyes) on crops at the dataset's
mean-landmark boxes. It adds ``weight * RegionDiscriminators.generator_loss(fake)`` to the G main loss,
``weight * discriminator_loss(real, fake)`` to the D main loss and the region discriminators' R1 to the R1
phase; ``region_D`` is stepped by the D optimiser. ``region.weight = 0`` (default) creates nothing and trains
exactly as without the option.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import Callback

from facegen.callbacks.ema import GeneratorEMA
from facegen.callbacks.image_grid import ImageGrid
from facegen.config.blocks import block, plain
from facegen.config.spec import as_spec, build, complete, optimizer_factory
from facegen.data.keypoints import DEFAULT_TEMPLATE_BOX, mean_template
from facegen.errors import ConfigError
from facegen.models.base import FacegenModule
from facegen.models.gan import grad_scaler, guarded_step, r1_penalty
from facegen.models.stylegan2.ada import AdaptiveP, AugmentPipe
from facegen.models.stylegan2.config import (
    DEFAULT_GENERATOR,
    DEFAULT_OPTIMIZER,
    AugmentConfig,
    EMAConfig,
    GridConfig,
    LossConfig,
    RegionConfig,
    discriminator_spec,
)
from facegen.models.stylegan2.losses import (
    discriminator_loss,
    generator_loss,
    mix_styles,
    path_length_penalty,
)
from facegen.models.stylegan2.networks import check_input
from facegen.models.stylegan2.region import RegionDiscriminators, region_boxes


class StyleGAN2(FacegenModule):
    """StyleGAN2 with ADA (Karras et al. 2020a, 2020b).

    Networks: ``G`` (trained), ``G_ema`` (EMA of ``G``; sampling and checkpoints), ``D``, ``augment_pipe``
    (with ADA) and ``region_D`` (with the region loss). Blocks are those of ``conf/model/stylegan2.yaml``;
    ``None`` for a block means its defaults, except ``augment=None``: no augmentation.

    Args:
        img_resolution, img_channels, c_dim: from ``ImageDataModule.model_kwargs()``.
        generator: ``{_target_: facegen.models.stylegan2.Generator, z_dim, w_dim, mapping_layers, channel_base,
            channel_max, num_fp16_res, conv_clamp}`` (defaults 512, 512, 8, 32768, 512, 4, 256; keys not given keep
            them); built with the data arguments.
        discriminator: ``{_target_: facegen.models.stylegan2.Discriminator, channel_base, channel_max,
            mbstd_group_size, num_fp16_res, conv_clamp}``; the sizes it does not set are the generator's (NVlabs),
            ``mbstd_group_size`` 4.
        loss: :class:`~facegen.models.stylegan2.config.LossConfig` (R1, path length, style mixing).
        augment: :class:`~facegen.models.stylegan2.config.AugmentConfig` (ADA pipeline and controller) or ``None``.
        optimizer: ``{_target_: torch.optim.Adam, _partial_: true, lr: 0.0025, betas: [0, 0.99], eps: 1e-8}`` for
            G and D, before the lazy-regularisation correction of :meth:`configure_optimizers`.
        ema: :class:`~facegen.models.stylegan2.config.EMAConfig`; grid: :class:`~.config.GridConfig`.
        region: :class:`~facegen.models.stylegan2.config.RegionConfig` (region loss; off by default).
        total_kimg: stop fitting after this many thousand images (NVlabs ``--kimg``); ``None`` = no limit here
            (``trainer.max_epochs`` / ``max_steps`` decide).
    Raises:
        ConfigError: a block with an unknown key, a value of the wrong type or range, or an untrusted ``_target_``.
    """

    def __init__(self, img_resolution: int = 64, img_channels: int = 3, c_dim: int = 0,
                 generator: Mapping[str, Any] | None = None, discriminator: Mapping[str, Any] | None = None,
                 loss: LossConfig | Mapping[str, Any] | None = None,
                 augment: AugmentConfig | Mapping[str, Any] | None = AugmentConfig(),
                 optimizer: Mapping[str, Any] | None = None, ema: EMAConfig | Mapping[str, Any] | None = None,
                 grid: GridConfig | Mapping[str, Any] | None = None,
                 region: RegionConfig | Mapping[str, Any] | None = None, total_kimg: float | None = None):
        super().__init__()
        self.automatic_optimization = False
        g_spec = complete(generator, DEFAULT_GENERATOR, "model.generator")
        d_spec = discriminator_spec(discriminator, g_spec, "model.discriminator")
        opt_spec = complete(None if optimizer is None else as_spec(optimizer, "model.optimizer"),
                                DEFAULT_OPTIMIZER, "model.optimizer")
        self.loss_cfg = block(LossConfig, loss, "model.loss")
        augment_cfg = None if augment is None else block(AugmentConfig, augment, "model.augment")
        self.augment_cfg = augment_cfg if augment_cfg is not None and augment_cfg.pipeline is not None else None
        self.ema_cfg = block(EMAConfig, ema, "model.ema")
        self.grid_cfg = block(GridConfig, grid, "model.grid")
        self.region_cfg = block(RegionConfig, region, "model.region")
        if total_kimg is not None and (isinstance(total_kimg, bool) or not isinstance(total_kimg, (int, float))
                                       or total_kimg <= 0):
            raise ConfigError(f"model.total_kimg: expected a number > 0 or null, got {total_kimg!r}")
        self.total_kimg = None if total_kimg is None else float(total_kimg)
        self.optimizer_spec = opt_spec
        self.optimizer_factory = optimizer_factory(opt_spec, "model.optimizer")  # refused here, not at fit
        self.save_hyperparameters({
            "img_resolution": img_resolution, "img_channels": img_channels, "c_dim": c_dim,
            "generator": plain(g_spec), "discriminator": plain(d_spec), "loss": plain(self.loss_cfg),
            "augment": plain(self.augment_cfg), "optimizer": plain(opt_spec), "ema": plain(self.ema_cfg),
            "grid": plain(self.grid_cfg), "region": plain(self.region_cfg), "total_kimg": self.total_kimg})

        data = dict(img_resolution=img_resolution, img_channels=img_channels, c_dim=c_dim)
        self.G = build(g_spec, "model.generator", **data)
        self.D = build(d_spec, "model.discriminator", **data)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        aug = self.augment_cfg
        self.augment_pipe = AugmentPipe(aug.pipeline, p=aug.p) if aug is not None else None
        self.ada = (AdaptiveP(self.augment_pipe, aug.target, aug.interval, aug.kimg)
                    if aug is not None and aug.target is not None else None)
        self.region_D = self._build_region_D(img_resolution, img_channels) if self.region_cfg.weight > 0 else None
        self.register_buffer("pl_mean", torch.zeros([]))
        self.cur_nimg = 0
        self.num_batches = 0
        self.skipped_steps = 0

    def _build_region_D(self, img_resolution: int, img_channels: int) -> RegionDiscriminators:
        """Region discriminators at boxes from ``region.landmarks`` (or the mean template), sized as ``D``."""
        cfg = self.region_cfg
        landmarks = cfg.landmarks
        if landmarks is None:
            landmarks = mean_template(img_resolution, box=cfg.template_box or DEFAULT_TEMPLATE_BOX)
        boxes = region_boxes(landmarks, list(cfg.regions), img_resolution, margin=cfg.margin)
        sizes = {k: v for k, v in getattr(self.D, "init_kwargs", {}).items()
                 if k in ("channel_base", "channel_max", "mbstd_group_size")}
        return RegionDiscriminators(boxes, img_channels, crop_size=cfg.crop, **sizes)

    # ---------------------------------------------------------------- pieces of the recipe
    @property
    def ada_p(self) -> float:
        """Current ADA augmentation probability (0 without augmentation)."""
        return float(self.augment_pipe.p) if self.augment_pipe is not None else 0.0

    def run_G(self, z: torch.Tensor, c: torch.Tensor | None, update_w_avg: bool = True):
        """Generate with style mixing and random noise: ``(images [B, C, R, R], ws [B, num_ws, w_dim])``."""
        ws = self.G.mapping(z, c, update_w_avg=update_w_avg)
        ws = mix_styles(self.G.mapping, z, c, ws, self.loss_cfg.style_mixing_prob)
        return self.G.synthesis(ws, noise_mode="random"), ws

    def run_D(self, images: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Augment (ADA) and discriminate: logits ``[B, 1]``."""
        if self.augment_pipe is not None:
            images = self.augment_pipe(images)
        return self.D(images, c)

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(images [B, C, R, R] float, c [B, c_dim] float or None)`` of a batch.

        Raises:
            StyleGANInputError: images of another shape, or no/wrong labels for a conditional model.
        """
        if isinstance(batch, dict):
            images, c = batch.get("image"), batch.get("c")
        elif isinstance(batch, (tuple, list)):
            images, c = batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            images, c = batch, None
        G = self.G
        check_input(images, ["B", G.img_channels, G.img_resolution, G.img_resolution], "batch['image']",
                    hint="images in [-1, 1]")
        if G.c_dim == 0:
            return images.float(), None
        check_input(c, [images.shape[0], G.c_dim], "batch['c']", hint="one-hot labels")
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
        cfg, region_weight = self.loss_cfg, self.region_cfg.weight
        do_pl = cfg.pl_weight > 0 and self.num_batches % cfg.pl_interval == 0
        do_r1 = cfg.r1_gamma > 0 and self.num_batches % cfg.r1_interval == 0
        z_dim = self.G.z_dim

        self.toggle_optimizer(opt_g)
        gen_c = self._sample_c(c)
        fake, _ = self.run_G(torch.randn(batch_size, z_dim, device=self.device), gen_c)
        loss_g = generator_loss(self.run_D(fake, gen_c))
        if self.region_D is not None:
            loss_region = self.region_D.generator_loss(fake)
            loss_g = loss_g + region_weight * loss_region
            self.log("train/loss_G_region", loss_region.detach())
        self._step(opt_g, loss_g, self.G)
        self.log("train/loss_G", loss_g.detach(), prog_bar=True)
        if do_pl:
            n = max(batch_size // cfg.pl_batch_shrink, 1)
            pl_c = None if gen_c is None else gen_c[:n]
            fake, ws = self.run_G(torch.randn(n, z_dim, device=self.device), pl_c)
            penalty, pl_mean = path_length_penalty(fake, ws, self.pl_mean, cfg.pl_decay, grad_scaler(self))
            self.pl_mean.copy_(pl_mean)
            loss_pl = (fake[:, 0, 0, 0] * 0 + penalty * cfg.pl_weight).mean() * cfg.pl_interval
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
            loss_d = loss_d + region_weight * loss_region
            self.log("train/loss_D_region", loss_region.detach())
        self._step(opt_d, loss_d, self.D, self.region_D)
        self.log("train/loss_D", loss_d.detach(), prog_bar=True)
        if do_r1:
            real_tmp = real.detach().requires_grad_(True)
            logits = self.run_D(real_tmp, c)
            penalty = r1_penalty(real_tmp, logits, grad_scaler(self))
            if self.region_D is not None:
                penalty = penalty + region_weight * self.region_D.r1_penalty(real_tmp, grad_scaler(self))
            loss_r1 = (logits[:, 0] * 0 + penalty * (cfg.r1_gamma / 2)).mean() * cfg.r1_interval
            self._step(opt_d, loss_r1, self.D, self.region_D)
            self.log("train/r1", penalty.detach().mean())
        self.untoggle_optimizer(opt_d)

        images_seen = batch_size * self.trainer.world_size
        if self.ada is not None and self.num_batches % self.ada.interval == 0:
            self.ada.adjust(images_seen, reduce=lambda t: self.trainer.strategy.reduce(t, reduce_op="sum"))
        self.num_batches += 1
        self.cur_nimg += images_seen
        self.log("train/ada_p", self.ada_p)
        self.log("train/kimg", self.cur_nimg / 1000)

    def _stop_at_total_kimg(self) -> None:
        """``trainer.should_stop`` once ``cur_nimg`` reached ``total_kimg`` thousand images (NVlabs ``--kimg``)."""
        if self.total_kimg is not None and self.cur_nimg >= self.total_kimg * 1000:
            self.trainer.should_stop = True

    def on_train_start(self) -> None:
        self._stop_at_total_kimg()  # a resumed fit that already reached total_kimg trains no further batch

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._stop_at_total_kimg()

    def configure_optimizers(self):
        """The ``optimizer`` block for G and for D (+ ``region_D``) with the lazy-regularisation correction
        ``lr * r``, ``betas ** r``, ``r = k / (k + 1)`` for regularisation interval ``k`` (only when that
        regulariser is on; StyleGAN2 appendix B, NVlabs ``training_loop.py``)."""
        spec, cfg, factory = self.optimizer_spec, self.loss_cfg, self.optimizer_factory

        def make(params, interval: int, enabled: bool):
            ratio = interval / (interval + 1) if enabled else 1.0
            corrected = {}
            if "lr" in spec:
                corrected["lr"] = spec["lr"] * ratio
            if "betas" in spec:
                corrected["betas"] = tuple(float(b) ** ratio for b in spec["betas"])
            return factory(params, **corrected)

        return [make(self.G.parameters(), cfg.pl_interval, cfg.pl_weight > 0),
                make(list(self.D.parameters()) + (list(self.region_D.parameters()) if self.region_D else []),
                     cfg.r1_interval, cfg.r1_gamma > 0)]

    def configure_callbacks(self) -> list[Callback]:
        """Generator EMA (``G_ema``) and sample grids, configured by the ``ema`` and ``grid`` blocks."""
        ema, grid = self.ema_cfg, self.grid_cfg
        return [GeneratorEMA(ema_kimg=ema.kimg, ema_rampup=ema.rampup),
                ImageGrid(every_kimg=grid.every_kimg, rows=grid.rows, cols=grid.cols, seed=grid.seed,
                          truncation_psi=grid.truncation_psi)]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """``stylegan2_state``: image and minibatch counts, ADA p and the ADA sign accumulator (this process's)."""
        state = {"cur_nimg": self.cur_nimg, "num_batches": self.num_batches, "ada_p": self.ada_p}
        if self.ada is not None:
            state.update(ada_sign_sum=self.ada.sign_sum, ada_count=self.ada.count)
        checkpoint["stylegan2_state"] = state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("stylegan2_state")
        if state is None:
            return
        self.cur_nimg, self.num_batches = int(state["cur_nimg"]), int(state["num_batches"])
        if self.augment_pipe is not None:
            self.augment_pipe.p.fill_(float(state["ada_p"]))
        if self.ada is not None:  # checkpoints written before the accumulator was saved restart it at zero
            self.ada.sign_sum, self.ada.count = float(state.get("ada_sign_sum", 0.0)), int(state.get("ada_count", 0))

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
