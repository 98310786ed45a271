"""The random generators' states in every checkpoint, so a resumed run draws what the uninterrupted run drew.

Lightning saves the weights, optimisers, loops and callbacks, but not the global random generators that
training steps draw from (StyleGAN2's latents, style mixing and ADA; FaceTuneGAN's style shift). With
:class:`RngStateInCheckpoint` (added to every run by :func:`facegen.runner.build_trainer`) and the train loaders'
per-epoch order (:mod:`facegen.data.loader`), a run killed and resumed from an end-of-epoch checkpoint continues
exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


def rng_states() -> dict[str, Any]:
    """torch (CPU and every CUDA device), NumPy and Python states as plain containers and tensors
    (``torch.load(weights_only=True)`` reads them)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {"torch": torch.get_rng_state(),
                              "numpy": [str(name), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                                        float(cached)],
                              "python": list(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned (the entries present)."""
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "numpy" in states:
        name, keys, pos, has_gauss, cached = states["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RngStateInCheckpoint(Callback):
    """Saves the global random states with each checkpoint; a resumed fit restores them when training starts
    (``on_train_start``: after the sanity check, which draws from them too)."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending is not None:
            set_rng_states(self._pending)
            self._pending = None
