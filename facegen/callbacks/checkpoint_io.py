"""Checkpoint I/O of every run: atomic writes (a crash while saving never leaves a truncated ``last.ckpt``), no
diverged weights ever written, and reads through facegen's one loading policy (resume with ``ckpt_path=`` never
runs code from the file)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from facegen.checkpoints import load
from facegen.errors import DivergenceError
from facegen.utils import atomic_torch_save


def non_finite_entries(state_dict: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``state_dict`` that hold a NaN or an infinity."""
    return [name for name, value in state_dict.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` that writes to a temporary file in the same folder, then renames it, refuses to
    write non-finite weights, and reads with :func:`facegen.checkpoints.load` (``weights_only=True`` said
    explicitly, whatever torch's default).

    Raises (``save_checkpoint``):
        DivergenceError: ``checkpoint["state_dict"]`` holds NaN/inf (names the file, the step and the tensor);
            nothing is written, so the previous file at ``path`` is kept.
    """

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        return load(path, map_location=map_location if map_location is not None else "cpu")

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options (got {storage_options!r}) for {path}")
        bad = non_finite_entries(checkpoint.get("state_dict") or {})
        if bad:
            more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
            raise DivergenceError(f"refusing to write {path} at step {checkpoint.get('global_step')}: "
                                  f"state_dict[{bad[0]!r}] holds NaN/inf{more}; the previous file is kept")
        atomic_torch_save(checkpoint, path)
