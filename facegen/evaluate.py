"""Evaluation entry point: ``python -m facegen.evaluate ckpt_path=runs/.../checkpoints/last.ckpt``
(or ``recipe_dir=runs/stylegan2_macaque`` for a recipe's ablation table, written into that folder).

The config is checked first (:mod:`facegen.config.schema`); a run that fails before it wrote a table leaves no
run folder. Rebuilds the model from its checkpoint (``Module.from_checkpoint``) and the data from the config stored
in the checkpoint (or from ``data=...`` given on the command line), runs the model's ``evaluate_run`` and
writes its metric tables (CSV + Markdown) into ``runs/evaluate/<time>/metrics/``, logged to W&B too.
"""
from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import facegen.config  # noqa: F401  (registers resolvers)
from facegen.checkpoints import load
from facegen.config.cli import prepare
from facegen.config.run_folder import RunFolder
from facegen.config.schema import check_config
from facegen.config.spec import check_target, check_targets
from facegen.errors import CheckpointError, FacegenError
from facegen.recipes import evaluate_recipe
from facegen.reporting import log_table
from facegen.utils import seed_everything

log = logging.getLogger("facegen.evaluate")


def stored_config(ckpt_path: Path) -> dict[str, Any]:
    """The resolved training config kept in a facegen checkpoint (``checkpoint["facegen_config"]``).

    The file is read with the one loading policy (:func:`facegen.checkpoints.load`), and every ``_target_``
    of the stored config must be a trusted one (:func:`facegen.config.spec.check_targets`): a config inside a
    file is as untrusted as the file.

    Raises:
        CheckpointError: the file is missing, refused, or was not written by ``facegen.train``.
        ConfigError: the stored config names an untrusted target.
    """
    checkpoint = load(ckpt_path)
    if not isinstance(checkpoint, dict) or "facegen_config" not in checkpoint:
        raise CheckpointError(f"{ckpt_path} has no 'facegen_config' entry: it was not written by facegen.train")
    config = checkpoint["facegen_config"]
    check_targets(config, f"{ckpt_path}: facegen_config")
    return config


def model_class(target: str) -> type[pl.LightningModule]:
    """The LightningModule class named by a (trusted) ``_target_``."""
    module_name, _, class_name = check_target(target, "model").rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def evaluate(cfg: DictConfig) -> dict[str, list[dict]]:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``; returns the metric tables."""
    seed_everything(cfg.seed)
    if cfg.get("recipe_dir"):  # a recipe folder (e.g. experiment=stylegan2_macaque): its ablation table

        return {"ablation": evaluate_recipe(cfg.recipe_dir, **(cfg.get("recipe_eval") or {}))}
    output_dir = Path(cfg.paths.output_dir)
    with RunFolder(output_dir, trained=lambda: (output_dir / "metrics").is_dir()):
        check_config(cfg, ("data", "logger"))
        ckpt_path = Path(cfg.ckpt_path)
        train_cfg = stored_config(ckpt_path)
        model = model_class(train_cfg["model"]["_target_"]).from_checkpoint(ckpt_path, map_location="cpu")
        if not hasattr(model, "evaluate_run"):
            raise CheckpointError(f"{type(model).__name__} from {ckpt_path} defines no evaluate_run()")

        data_cfg = cfg.data if cfg.get("data") else OmegaConf.create(train_cfg["data"])
        datamodule = instantiate(data_cfg)
        datamodule.prepare_data()
        datamodule.setup("test")

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
    try:
        evaluate(cfg)
    except FacegenError as error:
        raise SystemExit(f"facegen.evaluate: {type(error).__name__}: {error}") from error


if __name__ == "__main__":
    sys.argv[1:] = prepare("evaluate", sys.argv[1:])
    main()
