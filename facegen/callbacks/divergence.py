"""One divergence policy for every model: non-finite training losses or weights stop the run, loudly.

:class:`DivergenceMonitor` (added to every run by :func:`facegen.runner.build_trainer`) watches, after each
training batch:

- the values the module logged under ``train/`` in that batch (``self.log`` / ``self.log_dict``; a value logged
  in an earlier batch is not looked at again) and the loss ``training_step`` returned;
- the module's skipped-step counters (``skipped_steps`` of StyleGAN2, ``skipped_g_steps`` /
  ``skipped_d_steps`` of FaceTuneGAN: :func:`facegen.models.gan.guarded_step` skips a non-finite step and the
  module counts it);
- the weights (every ``check_weights_every_n_steps`` batches).

A batch with a non-finite logged loss or a rising counter is a bad step; ``patience`` bad steps in a row, or a
non-finite weight at once, raise :class:`~facegen.errors.DivergenceError` naming the step, the epoch and batch,
and the loss and its value, so the run stops and the process exits non-zero. A checkpoint is never written
while the latest step was bad (``on_save_checkpoint`` raises the same error before anything is written), and
:class:`facegen.callbacks.checkpoint_io.AtomicCheckpointIO` refuses non-finite weights: the last good
checkpoint is kept. Under DDP the decision is taken on all ranks together.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from facegen.errors import DivergenceError

SKIP_COUNTERS = ("skipped_steps", "skipped_g_steps", "skipped_d_steps")


def _as_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return float(value.float().mean()) if value.numel() else 0.0
    return float(value)


class DivergenceMonitor(Callback):
    """Stop training on non-finite losses (``patience`` bad steps in a row) or weights (at once).

    Args:
        patience: consecutive bad steps (training batches) tolerated; the next one stops the run.
        prefixes: logged keys that count as training losses (default ``("train/",)``).
        skip_counters: integer attributes of the module that count skipped non-finite steps.
        check_weights_every_n_steps: how often the weights are checked (batches; 0 = never).
    Raises:
        DivergenceError: from ``on_train_batch_end`` or ``on_save_checkpoint`` (see the module docstring).
    """

    def __init__(self, patience: int = 10, prefixes: Sequence[str] = ("train/",),
                 skip_counters: Sequence[str] = SKIP_COUNTERS, check_weights_every_n_steps: int = 1):
        self.patience = int(patience)
        self.prefixes = tuple(prefixes)
        self.skip_counters = tuple(skip_counters)
        self.check_weights_every_n_steps = int(check_weights_every_n_steps)
        self.bad_steps = 0
        self.reason = ""
        self._fresh: dict[str, Any] = {}
        self._counters: int | None = None
        self._original_log = None

    # ------------------------------------------------------------------ what the module logs
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or self._original_log is not None:
            return
        original = pl_module.log
        monitor = self

        def log(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            if isinstance(name, str) and name.startswith(monitor.prefixes):
                monitor._fresh[name] = value
            return original(name, value, *args, **kwargs)

        self._original_log = original
        pl_module.log = log  # an instance attribute in front of the method; log_dict calls it too

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._original_log is not None:
            pl_module.__dict__.pop("log", None)
            self._original_log = None

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._fresh = {}
        if self._counters is None:
            self._counters = self._skipped(pl_module)

    # ------------------------------------------------------------------ the checks
    def _skipped(self, pl_module: LightningModule) -> int:
        return sum(int(getattr(pl_module, name, 0) or 0) for name in self.skip_counters)

    def _bad_values(self, outputs: Any) -> list[tuple[str, float]]:
        values = dict(self._fresh)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            values.setdefault("loss", loss)
        bad = []
        for name, value in values.items():
            try:
                number = _as_float(value)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(number):
                bad.append((name, number))
        return bad

    @staticmethod
    def _bad_weights(pl_module: LightningModule) -> str | None:
        params = [(n, p) for n, p in pl_module.named_parameters() if p.is_floating_point() and p.numel()]
        if not params:
            return None
        sums = torch.stack([p.detach().float().sum() for _, p in params])  # NaN/inf anywhere -> NaN/inf sum
        finite = torch.isfinite(sums).cpu()
        if bool(finite.all()):
            return None
        name, p = params[int((~finite).nonzero()[0])]
        return f"weight {name} has {int((~torch.isfinite(p.detach())).sum())} non-finite values"

    def _where(self, trainer: Trainer, batch_idx: int) -> str:
        return f"step {trainer.global_step} (epoch {trainer.current_epoch}, batch {batch_idx})"

    @staticmethod
    def _last_checkpoint(trainer: Trainer) -> str:
        """Which checkpoint survives: the newest existing file the checkpoint callbacks wrote or would replace."""
        paths = []
        for callback in trainer.checkpoint_callbacks:
            dirpath = getattr(callback, "dirpath", None)
            paths += [getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", "")]
            paths += [str(Path(dirpath) / "last.ckpt")] if dirpath else []
        existing = sorted({p for p in paths if p and Path(p).is_file()}, key=lambda p: Path(p).stat().st_mtime)
        return f"the last good checkpoint ({existing[-1]}) is kept" if existing else "no checkpoint was written"

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        where = self._where(trainer, batch_idx)
        every = self.check_weights_every_n_steps
        if every > 0 and batch_idx % every == 0:
            weights = self._bad_weights(pl_module)
            if weights is not None:
                self.bad_steps, self.reason = self.patience, f"{weights} at {where}"
                raise DivergenceError(f"training diverged at {where}: {weights}; {self._last_checkpoint(trainer)}")
        bad = self._bad_values(outputs)
        counters = self._skipped(pl_module)
        skipped = counters - (self._counters or 0)
        self._counters = counters
        is_bad = bool(bad) or skipped > 0
        if trainer.world_size > 1:
            is_bad = bool(trainer.strategy.reduce_boolean_decision(is_bad, all=False))
        if not is_bad:
            self.bad_steps, self.reason = 0, ""
            return
        self.bad_steps += 1
        parts = [f"{name} = {value}" for name, value in bad[:3]] + ([f"{len(bad) - 3} more"] if len(bad) > 3 else [])
        if skipped:
            parts.append(f"{skipped} optimiser step(s) skipped as non-finite ({counters} so far)")
        losses = ", ".join(parts) or "a non-finite loss on another process"
        self.reason = f"{losses} at {where}"
        if self.bad_steps >= self.patience:
            raise DivergenceError(f"training diverged at {where}: {losses}; {self.bad_steps} bad steps in a row "
                                  f"(patience {self.patience}); {self._last_checkpoint(trainer)}")

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.bad_steps > 0:
            raise DivergenceError(f"training diverged: not writing a checkpoint after a non-finite step ({self.reason}); "
                                  f"{self._last_checkpoint(trainer)}")

    def state_dict(self) -> dict[str, Any]:
        return {"divergence": {"bad_steps": self.bad_steps, "reason": self.reason}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = state_dict.get("divergence", {})
        self.bad_steps, self.reason = int(state.get("bad_steps", 0)), str(state.get("reason", ""))
