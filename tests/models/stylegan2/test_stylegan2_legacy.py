"""Checkpoints written before the grouped constructor (flat hyper-parameters, facegen d915e12) still load,
reproduce their outputs, and resume through Lightning with the module built from today's config."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir

from facegen.checkpoints import load
from facegen.models.legacy import FLAT_KEYS, upgrade_hparams
from facegen.models.stylegan2 import StyleGAN2
from facegen.models.stylegan2.formats import load_generator
from facegen.runner import build_model

REPO = Path(__file__).resolve().parents[3]
LEGACY = REPO / "tests" / "data" / "legacy"
CKPT = LEGACY / "stylegan2.ckpt"
EXPECTED = json.loads((LEGACY / "expected_outputs.json").read_text())["stylegan2"]
# make_legacy.sh's stylegan2 run, in today's keys
NEW_KEYS = ["model=stylegan2", "model.generator.channel_base=128", "model.generator.channel_max=16",
            "model.generator.z_dim=16", "model.generator.w_dim=16", "model.generator.mapping_layers=2",
            "model.grid.every_kimg=1000"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _output(G: torch.nn.Module) -> float:
    """expected_outputs.py: the sum of G_ema's images for 2 latents of seed 0 (const noise)."""
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return float(G.eval()(z, None, noise_mode="const").double().sum())


def test_every_old_key_has_a_place():
    old = load(CKPT)["hyper_parameters"]
    assert set(FLAT_KEYS["StyleGAN2"]) == set(old) - {"img_resolution", "img_channels", "c_dim"}
    grouped = upgrade_hparams("StyleGAN2", old)
    assert grouped["generator"]["z_dim"] == 16 and grouped["optimizer"]["lr"] == 0.0025
    assert grouped["augment"]["pipeline"] == "bgc" and grouped["loss"]["r1_gamma"] == 0.1
    assert upgrade_hparams("StyleGAN2", grouped) == grouped  # grouped hyper-parameters pass through


def test_legacy_checkpoint_reproduces_its_output():
    module = StyleGAN2.from_checkpoint(CKPT)
    assert module.hparams["generator"]["channel_base"] == 128 and module.D.init_kwargs["channel_base"] == 128
    assert module.cur_nimg == 4 and module.num_batches == 1 and module.augment_pipe is not None
    assert _output(module.G_ema) == pytest.approx(EXPECTED, rel=1e-6)
    G, w_avg = load_generator(CKPT)
    assert G.init_kwargs["conv_clamp"] == 256 and torch.equal(w_avg, module.G_ema.mapping.w_avg)
    assert _output(G) == pytest.approx(EXPECTED, rel=1e-6)


def test_legacy_checkpoint_resumes_with_the_model_of_the_new_config(tmp_path):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=NEW_KEYS)

    class Data:
        def model_kwargs(self):
            return dict(img_resolution=32, img_channels=3, c_dim=0)

    module = build_model(cfg, Data())
    assert dict(module.hparams) == dict(StyleGAN2.from_checkpoint(CKPT).hparams)  # the same run in new keys
    ckpt = tmp_path / "last.ckpt"
    shutil.copy(CKPT, ckpt)
    images = torch.utils.data.TensorDataset(torch.rand(8, 3, 32, 32) * 2 - 1)
    trainer = pl.Trainer(max_epochs=2, limit_train_batches=1, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    trainer.fit(module, torch.utils.data.DataLoader(images, batch_size=4), ckpt_path=str(ckpt))
    assert module.cur_nimg == 4 + 4 and module.num_batches == 2  # the saved counts went on
