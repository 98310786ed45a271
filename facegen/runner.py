"""One configured training run, shared by ``facegen.train`` and the multi-stage recipes.

Config in (``conf/train.yaml`` and its groups), then: the config checked against what it builds
(:func:`facegen.config.schema.check_config`: types, ranges, unknown keys, before anything is built) ->
datamodule -> LightningModule (built with the datamodule's ``model_kwargs()``) -> callbacks + loggers ->
``Trainer.fit`` -> the model's own evaluation. Everything a run makes lands in its folder
``runs/<run_name>/<time>_<id>/`` (:class:`facegen.config.run_folder.RunFolder`: owned while the run runs,
removed when the run fails before its first step, marked ``failed.txt`` when it fails later): ``config.yaml``,
``checkpoints/``, ``pictures/``, ``metrics/`` and the logger files.

Every run also gets :class:`~facegen.callbacks.divergence.DivergenceMonitor` (non-finite losses or weights stop
it with a :class:`~facegen.errors.DivergenceError`; ``divergence:`` in the config sets it, ``null`` turns it
off), the random states in its checkpoints (:class:`~facegen.callbacks.rng_state.RngStateInCheckpoint`) and
atomic checkpoint writes that refuse non-finite weights (:class:`~facegen.callbacks.checkpoint_io.AtomicCheckpointIO`),
and torch's intra-op threads set from the cores it may use (:func:`facegen.utils.set_torch_threads`).
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
from facegen.callbacks.divergence import DivergenceMonitor
from facegen.callbacks.rng_state import RngStateInCheckpoint
from facegen.callbacks.run_config import RunConfigInCheckpoint
from facegen.config.run_folder import RunFolder
from facegen.config.schema import RUN_SECTIONS, check_config, check_node
from facegen.errors import ConfigError
from facegen.reporting import log_table
from facegen.utils import atomic_write, seed_everything, set_torch_threads

log = logging.getLogger("facegen.train")

DIVERGENCE_TARGET = f"{DivergenceMonitor.__module__}.{DivergenceMonitor.__qualname__}"
# ``ckpt_path`` values Lightning resolves itself (the newest / best checkpoint of the run's checkpoint folder)
SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")


def validate(cfg: DictConfig) -> None:
    """Check a training config before anything is built (see :mod:`facegen.config.schema`), plus ``ckpt_path``
    (an existing file, or one of Lightning's names) and the ``divergence`` settings.

    Raises:
        ConfigError: naming the key and the value at fault.
    """
    check_config(cfg, RUN_SECTIONS + (("recipe",) if cfg.get("recipe") else ()))
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and str(ckpt_path) not in SPECIAL_CKPT_PATHS and not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    divergence = cfg.get("divergence")
    if divergence is not None:
        check_node({"_target_": DIVERGENCE_TARGET, **OmegaConf.to_container(divergence, resolve=True)}, "divergence")


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
    """Trainer with the configured callbacks and loggers (plus the run's own callbacks, see the module
    docstring), writing into ``output_dir``."""
    config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    callbacks += [RunConfigInCheckpoint(config), RngStateInCheckpoint()]
    divergence = cfg.get("divergence", {})
    if divergence is not None and not any(isinstance(c, DivergenceMonitor) for c in callbacks):
        callbacks.append(DivergenceMonitor(**OmegaConf.to_container(OmegaConf.create(divergence), resolve=True)))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                       default_root_dir=str(output_dir), plugins=[AtomicCheckpointIO()])


def processes_per_machine(cfg: DictConfig) -> int:
    """How many training processes share this machine's cores: ``trainer.devices`` for CPU DDP, else 1."""
    trainer = cfg.get("trainer") or {}
    devices, strategy = trainer.get("devices", 1), str(trainer.get("strategy", ""))
    if trainer.get("accelerator") == "cpu" and "ddp" in strategy and isinstance(devices, int) and devices > 1:
        return devices
    return 1


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured model; returns the final logged metrics and the run folder.

    Raises:
        ConfigError: the config is refused (nothing is built, no run folder is left).
        DivergenceError: the losses or weights became non-finite (the last good checkpoint is kept).
    """
    output_dir = Path(cfg.paths.output_dir)
    with RunFolder(output_dir, cfg.get("ckpt_path")) as folder:
        validate(cfg)
        if cfg.get("recipe"):  # a multi-stage recipe (e.g. experiment=stylegan2_macaque) runs its own stages
            folder.trained = lambda: True  # its stages' folders are kept whatever happens
            return instantiate(cfg.recipe).run(cfg)
        set_torch_threads(processes_per_machine(cfg))
        seed_everything(cfg.seed)
        datamodule = build_datamodule(cfg)
        model = build_model(cfg, datamodule)
        trainer = build_trainer(cfg, output_dir)
        folder.trained = lambda: trainer.global_step > 0
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
