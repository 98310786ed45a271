"""The train loader of every datamodule: a :class:`~torch.utils.data.DataLoader` whose shuffling state is saved.

Lightning stores the ``state_dict()`` of a stateful train loader in each checkpoint and gives it back to the new
loader when a run resumes. Here that state is the shuffling generator's (which also seeds the workers), so the
epoch after a resume is shuffled as the uninterrupted run shuffled it: with the random states of
:class:`facegen.callbacks.rng_state.RngStateInCheckpoint`, a run resumed from an end-of-epoch checkpoint
continues exactly. An uninterrupted run draws exactly what a plain ``DataLoader`` draws.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


class ResumableDataLoader(DataLoader):
    """``DataLoader`` with ``state_dict``/``load_state_dict`` of its ``generator`` (empty without one)."""

    def state_dict(self) -> dict[str, Any]:
        return {} if self.generator is None else {"generator": self.generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.generator is not None and "generator" in state_dict:
            self.generator.set_state(state_dict["generator"])


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0,
                **kwargs: Any) -> DataLoader:
    """The loaders of facegen's datamodules: shuffled ones draw from ``torch.Generator().manual_seed(seed)`` and
    are :class:`ResumableDataLoader`; ``kwargs`` go to ``DataLoader`` (``drop_last``, ``persistent_workers``)."""
    if not shuffle:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, **kwargs)
    return ResumableDataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                               generator=torch.Generator().manual_seed(int(seed)), **kwargs)
