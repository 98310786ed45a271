"""Keep the resolved run configuration inside every checkpoint."""
from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class RunConfigInCheckpoint(Callback):
    """Stores the resolved Hydra config (a plain dict) as ``checkpoint["facegen_config"]``.

    ``python -m facegen.evaluate ckpt_path=...`` uses it to rebuild the model class and the data, so a
    checkpoint moved away from its run folder still evaluates.
    """

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["facegen_config"] = self.config
