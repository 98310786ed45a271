"""Checkpoint I/O of every run: atomic writes (a crash while saving never leaves a truncated ``last.ckpt``) and
reads through facegen's one loading policy (resume with ``ckpt_path=`` never runs code from the file)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from facegen.checkpoints import load
from facegen.utils import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` that writes to a temporary file in the same folder, then renames it, and reads
    with :func:`facegen.checkpoints.load` (``weights_only=True`` said explicitly, whatever torch's default)."""

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        return load(path, map_location=map_location if map_location is not None else "cpu")

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options (got {storage_options!r}) for {path}")
        atomic_torch_save(checkpoint, path)
