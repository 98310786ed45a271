"""StyleGAN2 training: losses on a fixed batch, the Lightning recipe, EMA, grids and exact resume."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from facegen.callbacks.ema import GeneratorEMA
from facegen.models.gan import r1_penalty
from facegen.models.stylegan2 import (
    Discriminator,
    Generator,
    StyleGAN2,
    StyleGANInputError,
)
from facegen.models.stylegan2.losses import (
    discriminator_loss,
    generator_loss,
    path_length_penalty,
)

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


pytestmark = pytest.mark.usefixtures("one_thread")


class FixedImages(Dataset):
    """16 fixed 32x32 RGB 'images' (smooth blobs) with two classes."""

    def __init__(self, n: int = 16):
        g = torch.Generator().manual_seed(0)
        self.images = torch.nn.functional.avg_pool2d(torch.rand(n, 3, 36, 36, generator=g) * 2 - 1, 5, stride=1)
        self.c = torch.nn.functional.one_hot(torch.arange(n) % 2, 2).float()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "c": self.c[i]}


def test_losses_fall_on_fixed_batch():
    torch.manual_seed(0)
    G = Generator(img_resolution=32, **TINY)
    D = Discriminator(img_resolution=32, channel_base=128, channel_max=16)
    real = FixedImages().images[:8]
    z = torch.randn(8, 16)
    opt_d = torch.optim.Adam(D.parameters(), lr=0.002, betas=(0.0, 0.99))
    with torch.no_grad():
        fake = G(z, noise_mode="const")
    d_losses = []
    for _ in range(8):
        loss = discriminator_loss(D(real), D(fake))
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        d_losses.append(loss.item())
    assert d_losses[-1] < d_losses[0] - 0.1
    opt_g = torch.optim.Adam(G.parameters(), lr=0.002, betas=(0.0, 0.99))
    D.requires_grad_(False)
    g_losses = []
    for _ in range(8):
        loss = generator_loss(D(G(z, noise_mode="const")))
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        g_losses.append(loss.item())
    assert g_losses[-1] < g_losses[0]
    assert all(torch.isfinite(torch.tensor(d_losses + g_losses)))


def test_penalties_hand_checked():
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    logits = (2.0 * x).sum(dim=[1, 2, 3])[:, None]  # gradient 2 everywhere -> ||g||^2 = 4 * 4
    torch.testing.assert_close(r1_penalty(x, logits), torch.full((3,), 16.0))
    ws = torch.randn(2, 3, 4, requires_grad=True)
    images = ws.sum(dim=(1, 2))[:, None, None, None].expand(2, 1, 4, 4) * 1.0
    penalty, new_mean = path_length_penalty(images, ws, torch.tensor(0.0), pl_decay=0.5)
    assert penalty.shape == (2,) and new_mean.requires_grad is False and float(new_mean) > 0


def make_module(**kw) -> StyleGAN2:
    args = dict(img_resolution=32, img_channels=3, c_dim=2, generator=TINY, loss={"r1_gamma": 1.0},
                augment={"p": 0.3, "kimg": 0.1}, ema={"kimg": 0.01}, grid={"every_kimg": 0.032, "rows": 2, "cols": 2})
    args.update(kw)
    return StyleGAN2(**args)


def trainer(tmp_path, max_epochs: int, **kw) -> pl.Trainer:
    return pl.Trainer(max_epochs=max_epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=str(tmp_path), accelerator="cpu", **kw)


def test_fit_ema_grid_and_exact_resume(tmp_path):
    torch.manual_seed(0)
    loader = DataLoader(FixedImages(), batch_size=4, shuffle=True, drop_last=True)
    module = make_module()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    fit = trainer(tmp_path, max_epochs=2, callbacks=[ckpt])
    g_before = module.G.synthesis.b32.conv1.weight.detach().clone()
    fit.fit(module, loader)

    metrics = fit.callback_metrics
    for key in ["train/loss_G", "train/loss_D", "train/r1", "train/pl", "train/ada_p", "train/kimg"]:
        assert torch.isfinite(metrics[key]), key
    assert module.cur_nimg == 8 * 4 and module.num_batches == 8
    assert fit.global_step > module.num_batches  # global_step counts optimiser steps, not images
    assert float(metrics["train/kimg"]) == pytest.approx(0.032)
    opt_g, opt_d = module.optimizers()
    assert opt_g.optimizer.param_groups[0]["lr"] == pytest.approx(0.0025 * 4 / 5)
    assert opt_d.optimizer.param_groups[0]["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    assert module.ada_p != pytest.approx(0.3)  # ADA moved p (ada_kimg is tiny here)
    # G_ema follows G but lags it; it is part of the checkpointed state dict
    g_after = module.G.synthesis.b32.conv1.weight
    ema = module.G_ema.synthesis.b32.conv1.weight
    assert not torch.equal(g_after, g_before) and not torch.equal(ema, g_after) and not torch.equal(ema, g_before)
    torch.testing.assert_close(module.G_ema.mapping.w_avg, module.G.mapping.w_avg)
    assert "G_ema.synthesis.b32.conv1.weight" in module.state_dict()
    grids = sorted((tmp_path / "pictures" / "samples").glob("*.png"))
    assert len(grids) == 2  # at start and after 32 images

    saved_nimg, saved_p = module.cur_nimg, module.ada_p
    restored = StyleGAN2.from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert restored.cur_nimg == saved_nimg and restored.ada_p == saved_p
    torch.testing.assert_close(restored.G_ema.synthesis.b32.conv1.weight, ema)

    seen = {}

    class Probe(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen.update(nimg=pl_module.cur_nimg, p=pl_module.ada_p, batches=pl_module.num_batches)

    resumed = make_module()
    trainer(tmp_path, max_epochs=3, callbacks=[Probe()]).fit(
        resumed, loader, ckpt_path=str(tmp_path / "checkpoints" / "last.ckpt"))
    assert seen == {"nimg": saved_nimg, "p": saved_p, "batches": 8}
    assert resumed.cur_nimg == saved_nimg + 16


def test_ema_beta_half_life():
    ema = GeneratorEMA(ema_kimg=1.0, ema_rampup=None)
    assert ema.beta(1000, 10**6) == pytest.approx(0.5)  # one half-life of images
    ramped = GeneratorEMA(ema_kimg=1.0, ema_rampup=0.5)
    assert ramped.beta(100, 400) == pytest.approx(0.5 ** (100 / 200))


def test_bad_batch_is_reported():
    module = make_module(c_dim=0)
    message = r"batch\['image'\]: expected shape \[B, 3, 32, 32\], got \[2, 3, 16, 16\]; images in \[-1, 1\]"
    with pytest.raises(StyleGANInputError, match=message):
        module._unpack({"image": torch.zeros(2, 3, 16, 16)})
    with pytest.raises(StyleGANInputError, match=r"batch\['c'\]: expected shape \[2, 2\], got None"):
        make_module()._unpack({"image": torch.zeros(2, 3, 32, 32)})
