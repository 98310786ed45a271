"""What facegen's LightningModules share: re-creation from a checkpoint alone, through the one loading policy."""
from __future__ import annotations

import os
from typing import Any

from lightning.pytorch import LightningModule

from facegen.checkpoints import load
from facegen.errors import CheckpointError
from facegen.models.legacy import upgrade_hparams


class FacegenModule(LightningModule):
    """A LightningModule that can be rebuilt from one of its checkpoints with no config and no data.

    Subclasses keep everything the constructor needs in their hyper-parameters (plain containers) and
    store data-derived arrays they need in ``on_save_checkpoint`` (restored by ``on_load_checkpoint`` or by
    overriding :meth:`checkpoint_kwargs`).
    """

    @classmethod
    def checkpoint_kwargs(cls, checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
        """Constructor arguments stored in ``checkpoint`` besides the hyper-parameters (default: none)."""
        return {}

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: Any = "cpu", **overrides: Any):
        """The module of ``path`` (a checkpoint of ``facegen.train``), weights and state restored.

        The file is read with :func:`facegen.checkpoints.load` (``weights_only=True``); hyper-parameters of
        checkpoints written before the grouped constructors are upgraded by :mod:`facegen.models.legacy`.
        ``overrides`` replace constructor arguments (e.g. a path that moved).

        Raises:
            CheckpointError: unreadable, refused, or a checkpoint of another model (names the file).
        """
        source = str(path)
        checkpoint = load(path, map_location=map_location)
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
            raise CheckpointError(f"{source}: not a Lightning checkpoint of facegen.train "
                                  "(no 'state_dict' / 'hyper_parameters')")
        hparams = upgrade_hparams(cls.__name__, checkpoint["hyper_parameters"], source)
        kwargs = {**hparams, **cls.checkpoint_kwargs(checkpoint, source), **overrides}
        try:
            model = cls(**kwargs)
        except TypeError as error:
            raise CheckpointError(f"{source}: not a {cls.__name__} checkpoint ({error})") from None
        model.on_load_checkpoint(checkpoint)
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as error:
            raise CheckpointError(f"{source}: its weights do not fit {cls.__name__}: "
                                  f"{str(error).splitlines()[0][:300]}") from None
        return model
