"""Every config under conf/ composes, passes the schema check, and builds (lightning-hydra-template's test_configs).

- every entry point's config and every option of every group compose and pass :func:`facegen.config.schema
  .check_config` (types, keys, trusted targets) — the GPU trainers and real-data roots are checked, not built;
- every experiment composes and is checked; those that run on embedded data are built at toy size;
- every model x data pair that is meant to work builds its datamodule and model at toy size (real-data pairs
  skip without ../shared/data);
- every CPU trainer, logger and callbacks option instantiates.
"""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from facegen.config.schema import check_config
from facegen.runner import build_datamodule, build_model, validate

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SHARED = REPO.parent / "shared" / "data"
ENTRY_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))
GROUPS = {g.name: sorted(p.stem for p in g.glob("*.yaml")) for g in sorted(CONF.iterdir())
          if g.is_dir() and g.name != "hydra"}
RANDOM_G = ("+data.random_generator={z_dim: 16, w_dim: 16, img_resolution: 32, mapping_layers: 2, channel_base: 256, "
            "channel_max: 16}")
TOY = {  # model -> overrides that make it build in seconds
    "facetunegan": ["data.n_identities=6", "data.test_fraction=0.34", "data.samples_per_expression=1",
                    "model.generator.channels=[4,4,4,4]", "model.generator.style_channels=[4,4,4,4]",
                    "model.discriminator.channels=[4,4,4,4]"],
    "stylegan2": ["data.n=8", "data.resolution=32", "data.batch_size=4", "model.generator.channel_base=128",
                  "model.generator.channel_max=16", "model.generator.z_dim=16", "model.generator.w_dim=16",
                  "model.generator.mapping_layers=2"],
    "dfr": ["data.n_train=4", "data.n_val=2", "data.n_test=2", "data.batch_size=2", "data.truth.n=0",
            "model.network.hidden=[8]", "generator_path=null", "landmark_model_path=null", RANDOM_G],
    "stylerig": ["data.n_train=4", "data.n_val=2", "data.n_test=2", "data.batch_size=2", "data.truth.n=0",
                 "model.network.latent_dim=4", "generator_path=null", "landmark_model_path=null", RANDOM_G],
    "face_regressor": ["data.n=16", "data.resolution=16", "data.batch_size=8", "data.render={supersample:1}",
                       "model.network.width=4"],
}
# model x data pairs meant to work (the model's own default data first); value: data root or None
PAIRS = [
    ("facetunegan", "synthetic_meshes", None), ("facetunegan", "ict", SHARED / "ict_facekit"),
    ("stylegan2", "synthetic_faces", None), ("stylegan2", "images", SHARED / "orl_faces"),
    ("dfr", "latents", None), ("stylerig", "latents", None), ("face_regressor", "synthetic_faces", None),
]
NEEDS_ROOT = {"coma": "/data/COMA_data", "facescape": "/data/facescape", "ict": "/data/ict", "images": "/data/images"}


def _compose(config: str, overrides: list[str], tmp_path: Path):
    """The config as the entry point sees it (Hydra's own node set, as lightning-hydra-template's tests do)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        if "paths" in cfg:
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.cache_dir = str(tmp_path / "cache")
    return cfg


def _required(config: str) -> list[str]:
    """Values an entry point cannot run without (its ``???`` keys), set to placeholders."""
    raw = OmegaConf.to_container(OmegaConf.load(CONF / f"{config}.yaml"), resolve=False)
    return [f"{key}=placeholder" for key, value in raw.items() if value == "???"]


@pytest.mark.parametrize("config", ENTRY_CONFIGS)
def test_entry_point_configs_compose_and_check(config, tmp_path):
    cfg = _compose(config, _required(config), tmp_path)
    check_config(cfg, [key for key in ("trainer", "data", "model", "callbacks", "logger") if key in cfg])


@pytest.mark.parametrize("group, option", [(g, o) for g, options in GROUPS.items() for o in options
                                           if g != "experiment"])
def test_every_group_option_composes_and_checks(group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if group == "data" and option in NEEDS_ROOT:
        overrides.append(f"data.root={NEEDS_ROOT[option]}")
    if group == "model" and option in ("dfr", "stylerig"):
        overrides += ["generator_path=null"]
    cfg = _compose("train", overrides, tmp_path)
    check_config(cfg)


@pytest.mark.parametrize("experiment", GROUPS["experiment"])
def test_every_experiment_composes_and_checks(experiment, tmp_path):
    overrides = [f"experiment={experiment}"]
    raw = OmegaConf.to_container(OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml"), resolve=False)
    if "coma" in experiment or "facescape" in experiment:
        overrides.append(f"data.root={NEEDS_ROOT['coma' if 'coma' in experiment else 'facescape']}")
    if experiment == "stylegan2_macaque":
        overrides.append("data.root=/data/macaques")
    if raw.get("dfr_path") == "???":
        overrides.append("dfr_path=null")
    cfg = _compose("train", overrides, tmp_path)
    check_config(cfg, ("trainer", "data", "model", "callbacks", "logger", *(("recipe",) if cfg.get("recipe") else ())))


@pytest.mark.parametrize("model, data, root", PAIRS, ids=[f"{m}-{d}" for m, d, _ in PAIRS])
def test_model_and_data_build_at_toy_size(model, data, root, tmp_path):
    if root is not None and not root.is_dir():
        pytest.skip(f"real data not found at {root}")
    overrides = [f"model={model}", f"data={data}", "logger=none", *TOY[model]]
    if root is not None:
        overrides += [f"data.root={root}"]
        if data == "ict":
            overrides += ["data.n_identities=4"]
        if data == "images":
            overrides = [o for o in overrides if not o.startswith(("data.n=", "data.resolution="))]
            overrides += ["data.resolution=32", "data.channels=1"]
    cfg = _compose("train", overrides, tmp_path)
    validate(cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        datamodule = build_datamodule(cfg)
        module = build_model(cfg, datamodule)
    finally:
        torch.set_num_threads(threads)
    assert isinstance(module, pl.LightningModule) and sum(p.numel() for p in module.parameters()) > 0
    assert type(module).__name__.lower().startswith(model.split("_")[0][:3])


@pytest.mark.parametrize("experiment, overrides", [
    ("facetunegan_cpu30", TOY["facetunegan"] + ["data.n_identities=6"]),
    ("stylegan2_faceworld", [o for o in TOY["stylegan2"] if "generator" not in o] + ["data.n=8",
                                                                                     "~callbacks.generator_quality"]),
    ("dfr_faceworld", TOY["dfr"]),
    ("stylerig_faceworld", TOY["stylerig"] + ["dfr_path=null"]),
])
def test_experiments_on_embedded_data_build(experiment, overrides, tmp_path):
    cfg = _compose("train", [f"experiment={experiment}", "logger=none", *overrides], tmp_path)
    validate(cfg)
    datamodule = build_datamodule(cfg)
    assert isinstance(build_model(cfg, datamodule), pl.LightningModule)


@pytest.mark.parametrize("option", ["cpu", "ddp_cpu"])
def test_cpu_trainers_instantiate(option, tmp_path):
    cfg = _compose("train", [f"trainer={option}"], tmp_path)
    trainer = instantiate(cfg.trainer, default_root_dir=str(tmp_path), logger=False)
    assert isinstance(trainer, pl.Trainer)


@pytest.mark.parametrize("option", GROUPS["logger"])
def test_loggers_instantiate(option, tmp_path, monkeypatch):
    if option == "tensorboard":
        pytest.importorskip("tensorboard", reason="logger=tensorboard needs `pip install tensorboard` (optional)")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = _compose("train", [f"logger={option}"], tmp_path)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    assert all(isinstance(lg, pl.loggers.Logger) for lg in loggers)


@pytest.mark.parametrize("option", GROUPS["callbacks"])
def test_callbacks_instantiate(option, tmp_path):
    cfg = _compose("train", [f"callbacks={option}"], tmp_path)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    assert all(isinstance(cb, pl.Callback) for cb in callbacks)
