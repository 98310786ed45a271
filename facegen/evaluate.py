"""Evaluation entry point: ``python -m facegen.evaluate ckpt_path=runs/.../checkpoints/last.ckpt``
(or ``recipe_dir=runs/stylegan2_macaque`` for a recipe's ablation table, written into that folder).

Rebuilds the model from its checkpoint (``Module.from_checkpoint``) and the data from the config stored
in the checkpoint (or from ``data=...`` given on the command line), runs the model's ``evaluate_run`` and
writes its metric tables (CSV + Markdown) into ``runs/evaluate/<time>/metrics/``, logged to W&B too.
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import facegen.config  # noqa: F401  (registers resolvers)
from facegen.errors import CheckpointError
from facegen.logging import log_table
from facegen.utils import seed_everything

log = logging.getLogger("facegen.evaluate")


def stored_config(ckpt_path: Path) -> dict[str, Any]:
    """The resolved training config kept in a facegen checkpoint (``checkpoint["facegen_config"]``).

    Raises:
        CheckpointError: the file is missing or was not written by ``facegen.train``.
    """
    if not ckpt_path.is_file():
        raise CheckpointError(f"checkpoint not found: {ckpt_path}")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if "facegen_config" not in checkpoint:
        raise CheckpointError(f"{ckpt_path} has no 'facegen_config' entry: it was not written by facegen.train")
    return checkpoint["facegen_config"]


def model_class(target: str) -> type[pl.LightningModule]:
    module_name, _, class_name = target.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def evaluate(cfg: DictConfig) -> dict[str, list[dict]]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``; returns the metric tables."""
    seed_everything(cfg.seed)
    if cfg.get("recipe_dir"):  # a recipe folder (e.g. experiment=stylegan2_macaque): its ablation table
        from facegen.recipes import evaluate_recipe

        return {"ablation": evaluate_recipe(cfg.recipe_dir, **(cfg.get("recipe_eval") or {}))}
    ckpt_path = Path(cfg.ckpt_path)
    train_cfg = stored_config(ckpt_path)
    model = model_class(train_cfg["model"]["_target_"]).from_checkpoint(ckpt_path, map_location="cpu")
    if not hasattr(model, "evaluate_run"):
        raise CheckpointError(f"{type(model).__name__} from {ckpt_path} defines no evaluate_run()")

    data_cfg = cfg.data if cfg.get("data") else OmegaConf.create(train_cfg["data"])
    datamodule = instantiate(data_cfg)
    datamodule.prepare_data()
    datamodule.setup("test")

    output_dir = Path(cfg.paths.output_dir)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    trainer = pl.Trainer(logger=loggers or False, default_root_dir=str(output_dir), accelerator="cpu",
                         enable_progress_bar=False, enable_model_summary=False)
    tables = model.evaluate_run(datamodule, split=cfg.split)
    for name, rows in tables.items():
        log_table(trainer, f"{cfg.split}/{name}", rows)
    for logger in trainer.loggers:
        logger.finalize("success")
    log.info("metric tables written to %s", (output_dir / "metrics").resolve())
    return tables


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
