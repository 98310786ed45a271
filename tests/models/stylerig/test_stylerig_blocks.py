"""The grouped constructors of DFR and StyleRig: blocks are typed and checked, defaults equal the configs', the
hyper-parameters are plain containers, and old flat hyper-parameters map onto the blocks."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from facegen.errors import ConfigError
from facegen.models.legacy import upgrade_hparams
from facegen.models.stylerig import (
    DFR,
    DFREvaluation,
    DFRLoss,
    StyleRig,
    StyleRigEvaluation,
    StyleRigLoss,
)
from facegen.models.stylerig.dfr_module import DEFAULT_NETWORK as DFR_NETWORK
from facegen.models.stylerig.dfr_module import DEFAULT_OPTIMIZER as DFR_OPTIMIZER
from facegen.models.stylerig.latents import LatentDataModule
from facegen.models.stylerig.rignet import DEFAULT_CONTROL_LAYERS
from facegen.models.stylerig.stylerig_module import DEFAULT_NETWORK as RIG_NETWORK
from facegen.models.stylerig.stylerig_module import DEFAULT_OPTIMIZER as RIG_OPTIMIZER

CONF = Path(__file__).resolve().parents[3] / "conf" / "model"
TINY_G = {"z_dim": 16, "w_dim": 16, "img_resolution": 32, "mapping_layers": 2, "channel_base": 256, "channel_max": 16}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def kwargs(tmp_path_factory):
    dm = LatentDataModule(cache_dir=tmp_path_factory.mktemp("cache"), n_train=4, n_val=0, n_test=0, batch_size=2,
                          truth={"n": 0}, random_generator=TINY_G)
    dm.prepare_data()
    return dm.model_kwargs()


def model_config(name: str) -> dict:
    return yaml.safe_load((CONF / f"{name}.yaml").read_text())["model"]


def test_the_configs_hold_the_constructor_defaults():
    dfr = model_config("dfr")
    assert dfr["_recursive_"] is False
    assert {**dfr["network"], "hidden": list(dfr["network"]["hidden"])} == DFR_NETWORK
    assert dfr["optimizer"] == DFR_OPTIMIZER
    assert DFRLoss(**dfr["loss"]) == DFRLoss() and DFREvaluation(**dfr["evaluation"]) == DFREvaluation()
    rig = model_config("stylerig")
    assert rig["_recursive_"] is False
    assert rig["network"]["control_layers"] == DEFAULT_CONTROL_LAYERS
    assert {**rig["network"], "control_layers": None} == RIG_NETWORK
    assert rig["optimizer"] == RIG_OPTIMIZER
    assert StyleRigLoss(**rig["loss"]) == StyleRigLoss()
    assert StyleRigEvaluation(**rig["evaluation"]) == StyleRigEvaluation()


def test_blocks_refuse_unknown_keys_wrong_types_and_untrusted_targets(kwargs):
    with pytest.raises(ConfigError, match=r"model\.loss\.lambda_lnd: unknown key; did you mean 'lambda_land'"):
        DFR(**kwargs, network={"hidden": [8]}, loss={"lambda_lnd": 1.0})
    with pytest.raises(ConfigError, match=r"model\.evaluation\.pairs: expected int, got 'many'"):
        StyleRig(**kwargs, evaluation={"pairs": "many"})
    with pytest.raises(ConfigError, match=r"model\.loss\.w_edit: a loss weight must be >= 0"):
        StyleRig(**kwargs, loss={"w_edit": -1.0})
    with pytest.raises(ConfigError, match="os.system"):
        DFR(**kwargs, optimizer={"_target_": "os.system"})
    with pytest.raises(ConfigError, match=r"model\.morphable\.name"):
        DFR(**kwargs, morphable={"name": "bfm"})


def test_partial_blocks_merge_into_the_defaults_and_hparams_are_plain(kwargs):
    module = DFR(**kwargs, network={"hidden": [8]}, optimizer={"lr": 0.01})
    optimiser = module.configure_optimizers()
    assert isinstance(optimiser, torch.optim.Adam) and optimiser.param_groups[0]["lr"] == 0.01
    assert module.dfr.hidden == [8] and module.dfr.expression_bounds == (0.0, 1.0)
    assert module.hparams["network"] == {**DFR_NETWORK, "hidden": [8]}
    assert module.hparams["loss"] == {"lambda_land": 100.0, "lambda_reg": 0.001, "w_id": 1.0, "w_exp": 1.0,
                                      "w_alb": 1.0}
    sgd = StyleRig(**kwargs, network={"controls": ["all"], "latent_dim": 4},
                   optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1})
    assert isinstance(sgd.configure_optimizers(), torch.optim.SGD) and sgd.controls == ["all"]
    assert list(sgd.rignets) == ["all"] and sgd.rignets["all"].layers == list(range(sgd.G.num_ws))

    def plain(value) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (str, int, float, bool))

    assert plain(dict(module.hparams)) and plain(dict(sgd.hparams))


def test_flat_hyper_parameters_map_onto_the_blocks():
    old = {"generator_path": "g.pt", "img_resolution": 32, "num_ws": 8, "w_dim": 16, "render": None,
           "dfr_path": "dfr.ckpt", "morphable": None, "landmark_model_path": None, "controls": ["pose"],
           "control_layers": {"pose": "0-2"}, "latent_dim": 4, "decoder_hidden": None, "w_rec": 1.0, "w_edit": 30.0,
           "w_consist": 20.0, "lambda_land": 10.0, "lr": 0.002, "eval_pairs": 8, "grid_size": 2, "sweep_latents": 1,
           "sweep_steps": 3}
    new = upgrade_hparams("StyleRig", old)
    assert new["network"] == {"controls": ["pose"], "control_layers": {"pose": "0-2"}, "latent_dim": 4,
                              "decoder_hidden": None}
    assert new["loss"] == {"w_rec": 1.0, "w_edit": 30.0, "w_consist": 20.0, "lambda_land": 10.0}
    assert new["optimizer"] == {"lr": 0.002}
    assert new["evaluation"] == {"pairs": 8, "grid_size": 2, "sweep_latents": 1, "sweep_steps": 3}
    assert new["dfr_path"] == "dfr.ckpt" and new["num_ws"] == 8
    dfr = upgrade_hparams("DFR", {"hidden": [8], "lr": 0.001, "eval_truth_batch": 16, "eval_projection_steps": 5,
                                  "picture_count": 2, "w_exp": 0.5})
    assert dfr == {"network": {"hidden": [8]}, "optimizer": {"lr": 0.001}, "loss": {"w_exp": 0.5},
                   "evaluation": {"projection_steps": 5, "picture_count": 2}}     # eval_truth_batch: unused, dropped
    assert upgrade_hparams("DFR", new) == new                                      # grouped ones pass through
