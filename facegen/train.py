"""Training entry point: ``python -m facegen.train model=facetunegan data=ict trainer.max_epochs=5``
(or LightningCLI's ``--trainer.max_epochs 5``; ``--help``, ``--print_config``: :mod:`facegen.config.cli`).

Composes the Hydra config (``conf/train.yaml`` and its groups) and runs it with :func:`facegen.runner.train`:
config check -> datamodule -> LightningModule -> callbacks + loggers -> ``Trainer.fit`` -> the model's own
evaluation, all written into the run folder ``runs/<run_name>/<time>_<id>/``. A facegen error (a refused config,
missing data, a diverged run) ends the process with one line naming it and exit status 1.
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from facegen.config.cli import prepare
from facegen.errors import FacegenError
from facegen.runner import build_datamodule, build_model, build_trainer, train

__all__ = ["build_datamodule", "build_model", "build_trainer", "main", "train"]


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        train(cfg)
    except FacegenError as error:
        raise SystemExit(f"facegen.train: {type(error).__name__}: {error}") from error


if __name__ == "__main__":
    sys.argv[1:] = prepare("train", sys.argv[1:])
    main()
