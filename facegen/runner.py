"""One configured training run, shared by ``facegen.train`` and the multi-stage recipes.

Config in (``conf/train.yaml`` and its groups), then: datamodule -> LightningModule (built with the
datamodule's ``model_kwargs()``) -> callbacks + loggers -> ``Trainer.fit`` -> the model's own evaluation.
Everything a run makes lands in its folder ``runs/<run_name>/<time>/``: ``config.yaml``,
``checkpoints/``, ``pictures/``, ``metrics/`` and the logger files.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import facegen.config  # noqa: F401  (registers resolvers)
from facegen.callbacks.checkpoint_io import AtomicCheckpointIO
from facegen.callbacks.run_config import RunConfigInCheckpoint
from facegen.reporting import log_table
from facegen.utils import atomic_write, seed_everything

log = logging.getLogger("facegen.train")


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """Instantiate ``cfg.data``, prepare and set it up so that ``model_kwargs()`` is available."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def build_model(cfg: DictConfig, datamodule: pl.LightningDataModule) -> pl.LightningModule:
    """``cfg.model`` completed with the datamodule's ``model_kwargs()`` (arrays, hence ``_partial_``).

    Arguments arrive as plain lists/dicts (``_convert_="all"``), so the hyper-parameters Lightning pickles
    into checkpoints hold no OmegaConf objects: ``torch.load(weights_only=True)`` (resume) and facegen's
    restricted unpickler read them."""
    return instantiate(cfg.model, _partial_=True, _convert_="all")(**datamodule.model_kwargs())


def build_trainer(cfg: DictConfig, output_dir: Path) -> pl.Trainer:
    """Trainer with the configured callbacks and loggers, writing into ``output_dir``."""
    config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks.append(RunConfigInCheckpoint(config))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                       default_root_dir=str(output_dir), plugins=[AtomicCheckpointIO()])


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured model; returns the final logged metrics and the run folder."""
    if cfg.get("recipe"):  # a multi-stage recipe (e.g. experiment=stylegan2_macaque) runs its own stages
        return instantiate(cfg.recipe).run(cfg)
    output_dir = Path(cfg.paths.output_dir)
    seed_everything(cfg.seed)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    trainer = build_trainer(cfg, output_dir)
    if trainer.is_global_zero:
        atomic_write(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        log.info("run folder: %s", output_dir.resolve())

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.get("evaluate_after_fit") and hasattr(model, "evaluate_run") and trainer.is_global_zero:
        for name, rows in model.evaluate_run(datamodule, split="test").items():
            log_table(trainer, f"test/{name}", rows)
        log.info("metric tables written to %s", output_dir / "metrics")
    return {"metrics": metrics, "output_dir": str(output_dir)}
