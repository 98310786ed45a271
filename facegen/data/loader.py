"""The loaders of every datamodule: one place that decides how batches are drawn.

A shuffled (train) loader draws epoch ``e``'s order from a generator seeded by ``(seed, e)`` alone
(:class:`EpochRandomSampler`), never from the global generator, so the order depends neither on what the model
draws nor on where the run started: a run resumed at epoch ``e`` (Lightning makes a new loader then) shuffles
epoch ``e`` as the uninterrupted run did. Epoch 0 is drawn exactly as a ``DataLoader(shuffle=True,
generator=torch.Generator().manual_seed(seed))`` draws it, so first epochs are unchanged.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s order: ``seed`` for epoch 0, a distinct 63-bit mix of both after."""
    if epoch == 0:
        return int(seed)
    return (int(seed) * 6364136223846793005 + int(epoch) * 1442695040888963407) % (2**63)


class EpochRandomSampler(Sampler[int]):
    """A random permutation of ``range(n)`` per epoch, a function of ``(seed, epoch)`` alone.

    Lightning calls :meth:`set_epoch` before each epoch; ``epoch`` is the epoch the loader starts in. The
    loader's own generator (worker seeds, ``loader_generator``) is re-seeded with the epoch too.
    """

    def __init__(self, n: int, seed: int, epoch: int = 0, loader_generator: torch.Generator | None = None):
        self.n, self.seed, self.loader_generator = int(n), int(seed), loader_generator
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.loader_generator is not None:
            self.loader_generator.manual_seed(epoch_seed(self.seed, self.epoch))

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # a shuffled DataLoader draws its workers'
        yield from torch.randperm(self.n, generator=generator).tolist()  # base seed first: epoch 0 as before


def starting_epoch(datamodule: Any) -> int:
    """The epoch a loader made now starts in: the attached trainer's (resumed runs start past 0), else 0."""
    trainer = getattr(datamodule, "trainer", None)
    try:
        return int(trainer.fit_loop.epoch_progress.current.processed)
    except AttributeError:
        return 0


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0, epoch: int = 0,
                **kwargs: Any) -> DataLoader:
    """A ``DataLoader``; a shuffled one draws epoch by epoch from :class:`EpochRandomSampler` (starting at
    ``epoch``, see :func:`starting_epoch`); ``kwargs`` go to ``DataLoader`` (``drop_last``, ``persistent_workers``)."""
    if not shuffle:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, **kwargs)
    generator = torch.Generator()
    sampler = EpochRandomSampler(len(dataset), seed, epoch, loader_generator=generator)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, generator=generator,
                      **kwargs)
