"""Training entry point: ``python -m facegen.train model=facetunegan data=ict trainer.max_epochs=5``.

Composes the Hydra config (``conf/train.yaml`` and its groups) and runs it with :func:`facegen.runner.train`:
datamodule -> LightningModule -> callbacks + loggers -> ``Trainer.fit`` -> the model's own evaluation, all
written into the run folder ``runs/<run_name>/<time>/``.
"""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from facegen.runner import build_datamodule, build_model, build_trainer, train

__all__ = ["build_datamodule", "build_model", "build_trainer", "main", "train"]


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
