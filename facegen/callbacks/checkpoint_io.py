"""Atomic checkpoint writing: a crash while saving never leaves a truncated ``last.ckpt``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from facegen.utils import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` that writes to a temporary file in the same folder, then renames it."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options (got {storage_options!r}) for {path}")
        atomic_torch_save(checkpoint, path)
