"""Configs checked against the signatures of their targets, before anything is built (facegen.config.schema)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir

from facegen.config.schema import check_config, check_node
from facegen.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class ToyLoss:
    """A typed block as the grouped constructors have them: weight (unitless), interval (batches)."""

    weight: float = 1.0
    interval: int = 4

    def check(self, where: str) -> None:
        if self.weight < 0:
            raise ConfigError(f"{where}.weight: expected >= 0, got {self.weight}")


class ToyModule(pl.LightningModule):
    """A LightningModule with a data argument, a dataclass block, a network block and an optimiser block."""

    def __init__(self, img_resolution: int, loss: ToyLoss | Mapping | None = None,
                 net: Mapping | torch.nn.Module | None = None, optimizer: Mapping | None = None, width: int = 8):
        super().__init__()


TOY = f"{__name__}.ToyModule"


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=["run_name=test", "paths.output_dir=/tmp/unused", *overrides])


def test_every_shipped_model_and_data_config_passes():
    for overrides in (["model=facetunegan"], ["model=stylegan2"], ["model=dfr"], ["model=stylerig"],
                      ["model=face_regressor"], ["model=facetunegan", "trainer=ddp_cpu", "logger=csv"],
                      ["model=stylegan2", "trainer=bf16", "logger=tensorboard"]):
        check_config(compose_train(*overrides))


@pytest.mark.parametrize("override, message", [
    ("trainer.max_epochs=abc", "trainer.max_epochs: expected int or null, got 'abc'"),
    ("trainer.max_epochs=1.5", "trainer.max_epochs: expected int or null, got 1.5"),
    ("trainer.max_epochs=-2", "trainer.max_epochs: expected an int >= -1, got -2"),
    ("trainer.precision=bf17-mixed", "trainer.precision: .*got 'bf17-mixed'; did you mean 'bf16-mixed'"),
    ("+trainer.max_epoch=3", "trainer.max_epoch: unknown key; did you mean 'max_epochs'"),
    ("data.batch_size=four", "data.batch_size: expected int, got 'four'"),
    ("data.batch_size=0", "data.batch_size: expected an int >= 1, got 0"),
    ("data.val_fraction=1.0", "data.val_fraction: expected a number >= 0 and < 1, got 1.0"),
    ("+data.n_identites=3", "data.n_identites: unknown key; did you mean 'n_identities'"),  # the mesh source's key
    ("callbacks.model_checkpoint.save_top_k=all", "callbacks.model_checkpoint.save_top_k: expected int"),
])
def test_trainer_datamodule_and_callback_errors_name_key_and_value(override, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_train(override))


def test_model_keys_are_checked_against_the_constructor():
    cfg = compose_train("model=stylegan2")
    key = "model.optimizer.lr" if "optimizer" in cfg.model else "model.lr"  # grouped constructors or flat keys
    with pytest.raises(ConfigError, match=f"{key}: expected float.*got 'abc'"):
        check_config(compose_train("model=stylegan2", f"{key}=abc"))


def test_missing_value_and_untrusted_target_are_named():
    with pytest.raises(ConfigError, match=r"data.root: missing value \(set data.root=...\)"):
        check_config(compose_train("data=ict"))
    with pytest.raises(ConfigError, match="data._target_='os.system'"):
        check_node({"_target_": "os.system"}, "data")


def test_toy_module_with_a_dataclass_block_and_nested_targets(monkeypatch):
    from facegen.config import spec

    monkeypatch.setattr(spec, "TRUSTED_TARGETS", (*spec.TRUSTED_TARGETS, f"{__name__}."))
    good = {"_target_": TOY, "_recursive_": False, "loss": {"weight": 0.5},
            "net": {"_target_": "torch.nn.Linear", "in_features": 4, "out_features": 2},
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3, "betas": [0.0, 0.99]}}
    check_node(good, "model")   # img_resolution comes from the datamodule: not required here
    bad = [({"loss": {"wieght": 1.0}}, r"model.loss.wieght: unknown key; did you mean 'weight'"),
           ({"loss": {"weight": "heavy"}}, "model.loss.weight: expected float, got 'heavy'"),
           ({"loss": {"weight": -1.0}}, "model.loss.weight: expected >= 0, got -1.0"),        # the block's own check
           ({"net": {"_target_": "torch.nn.Linear", "in_featres": 4}}, "model.net.in_featres: unknown key; did you mean 'in_features'"),
           ({"optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": "fast"}},
            "model.optimizer.lr: expected float, got 'fast'"),
           ({"optimizer": {"_target_": "torch.optim.Adam", "lr": -1.0}}, "model.optimizer.lr: expected a number >= 0"),
           ({"widht": 3}, "model.widht: unknown key; did you mean 'width'"),
           ({"width": "wide"}, "model.width: expected int, got 'wide'")]
    for change, message in bad:
        with pytest.raises(ConfigError, match=message):
            check_node({**good, **change}, "model")


def test_hydra_interpolations_outside_a_run_are_not_checked():
    # run_name is ${hydra:runtime.choices.model}: unresolvable when composed outside a Hydra run; the rest is checked
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/tmp/unused"])
    check_config(cfg)
