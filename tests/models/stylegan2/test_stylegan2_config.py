"""The grouped StyleGAN2 constructor: defaults equal the flat ones, blocks are checked, training stops at
``total_kimg``, and the ADA sign accumulator survives a checkpoint."""
from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from facegen.errors import ConfigError
from facegen.models.legacy import upgrade_hparams
from facegen.models.stylegan2 import StyleGAN2

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)
# The flat constructor's defaults (facegen <= d915e12), data arguments at a small resolution.
OLD_DEFAULTS = dict(
    img_resolution=8, img_channels=3, c_dim=0, z_dim=512, w_dim=512, mapping_layers=8, channel_base=32768,
    channel_max=512, num_fp16_res=4, conv_clamp=256, mbstd_group_size=4, lr=0.0025, betas=(0.0, 0.99),
    r1_gamma=10.0, r1_interval=16, pl_weight=2.0, pl_interval=4, pl_decay=0.01, pl_batch_shrink=2,
    style_mixing_prob=0.9, augment_pipeline="bgc", augment_p=0.0, ada_target=0.6, ada_interval=4, ada_kimg=500.0,
    ema_kimg=10.0, ema_rampup=0.05, grid_every_kimg=50.0, grid_rows=4, grid_cols=4, grid_seed=0,
    grid_truncation_psi=1.0, region_weight=0.0, regions=("eyes",), region_landmarks=None, region_template_box=None,
    region_crop=16, region_margin=0.25)


def test_defaults_equal_the_flat_constructor():
    new = StyleGAN2(img_resolution=8)
    old = StyleGAN2(**upgrade_hparams("StyleGAN2", OLD_DEFAULTS))
    assert dict(new.hparams) == dict(old.hparams)
    assert new.D.init_kwargs["channel_base"] == 32768 and new.G.init_kwargs["conv_clamp"] == 256
    assert new.total_kimg is None and new.augment_pipe is not None and new.region_D is None


def test_discriminator_follows_the_generator_unless_set():
    module = StyleGAN2(img_resolution=32, generator=TINY, discriminator={"channel_max": 32}, augment=None)
    assert module.D.init_kwargs["channel_base"] == 128 and module.D.init_kwargs["channel_max"] == 32
    assert module.hparams["discriminator"]["channel_max"] == 32 and module.augment_pipe is None
    assert StyleGAN2(img_resolution=32, generator=TINY, augment={"pipeline": None}).hparams["augment"] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"loss": {"r1_gama": 1.0}}, r"model.loss.r1_gama: unknown key; did you mean 'r1_gamma'\?"),
    ({"loss": {"r1_interval": 0}}, r"model.loss.r1_interval: must be >= 1, got 0"),
    ({"augment": {"pipeline": "bcg"}}, r"model.augment.pipeline: unknown ADA pipeline 'bcg'; did you mean"),
    ({"ema": {"kimg": "ten"}}, r"model.ema.kimg: expected float, got 'ten'"),
    ({"generator": {"_target_": "os.system"}}, r"model.generator._target_='os.system'"),
    ({"optimizer": {"_target_": "builtins.eval"}}, r"model.optimizer._target_='builtins.eval'"),
    ({"total_kimg": 0}, r"model.total_kimg: expected a number > 0 or null, got 0"),
    ({"total_kimg": "10"}, r"model.total_kimg: expected a number > 0 or null, got '10'"),
])
def test_bad_blocks_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        StyleGAN2(img_resolution=32, **{"generator": TINY, **kwargs})


def make(**kw) -> StyleGAN2:
    torch.manual_seed(0)
    args = dict(img_resolution=32, generator=TINY, loss={"r1_interval": 2, "pl_interval": 2},
                grid={"every_kimg": 0}, ema={"kimg": 0.01})
    return StyleGAN2(**{**args, **kw})


def fit(module, tmp_path, ckpt_path=None, max_epochs=10, **kw) -> pl.Trainer:
    data = TensorDataset(torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    trainer = pl.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, callbacks=[checkpoint], **kw)
    trainer.fit(module, DataLoader(data, batch_size=4), ckpt_path=ckpt_path)
    return trainer


def test_training_stops_at_total_kimg_and_resumes_to_a_larger_one(tmp_path):
    module = make(total_kimg=0.024, augment=None)  # 24 images: 6 batches of 4, mid-way through epoch 2
    trainer = fit(module, tmp_path)
    assert module.cur_nimg == 24 and module.num_batches == 6
    assert trainer.global_step > module.num_batches  # max_steps would count optimiser steps, not minibatches
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["stylegan2_state"]["cur_nimg"] == 24  # saved at the stop

    again = make(total_kimg=0.024, augment=None)  # resumed at the limit: no further batch
    fit(again, tmp_path, ckpt_path=str(last))
    assert again.cur_nimg == 24 and again.num_batches == 6

    longer = make(total_kimg=0.04, augment=None)
    fit(longer, tmp_path, ckpt_path=str(last))
    assert longer.cur_nimg == 40 and longer.num_batches == 10

    capped = make(total_kimg=1.0, augment=None)  # the trainer's own limit comes first
    fit(capped, tmp_path / "capped", max_epochs=1)
    assert capped.cur_nimg == 16


def test_ada_accumulator_survives_a_checkpoint_between_adjustments(tmp_path):
    module = make(augment={"p": 0.2, "kimg": 0.1, "interval": 4})
    fit(module, tmp_path, max_epochs=1, limit_train_batches=3)  # adjusted after batch 0; batches 1, 2 pending
    assert module.ada.count == 2 * 4 and module.num_batches % module.ada.interval != 0
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)["stylegan2_state"]
    assert saved["ada_count"] == 8 and saved["ada_sign_sum"] == module.ada.sign_sum

    restored = StyleGAN2.from_checkpoint(last)
    assert (restored.ada.sign_sum, restored.ada.count) == (module.ada.sign_sum, module.ada.count)
    # the same logits for the rest of the interval: the same p at the next adjustment
    logits = torch.tensor([[1.0], [-1.0], [-2.0], [-3.0]])
    for m in (module, restored):
        m.ada.accumulate(logits)
        m.ada.adjust(4)
    assert restored.ada_p == module.ada_p

    seen = {}

    class Probe(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen.update(sign_sum=pl_module.ada.sign_sum, count=pl_module.ada.count, p=pl_module.ada_p)

    resumed = make(augment={"p": 0.2, "kimg": 0.1, "interval": 4})
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                         callbacks=[Probe()], limit_train_batches=3)
    data = TensorDataset(torch.rand(16, 3, 32, 32) * 2 - 1)
    trainer.fit(resumed, DataLoader(data, batch_size=4), ckpt_path=str(last))
    assert seen == {"sign_sum": saved["ada_sign_sum"], "count": 8, "p": saved["ada_p"]}
