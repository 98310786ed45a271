"""Logger factories. W&B is the default: online with a key, offline without one, never a hang."""
from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


def wandb_api_key_configured() -> bool:
    """True when ``WANDB_API_KEY`` is set or ``~/.netrc`` holds credentials for api.wandb.ai."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_logger(project: str, name: str, save_dir: str, mode: str = "auto", **kwargs: Any) -> WandbLogger:
    """A :class:`WandbLogger` whose mode never needs the network unless a key is configured.

    Args:
        mode: ``"auto"`` (online when an API key is configured, else offline), ``"online"``,
            ``"offline"`` or ``"disabled"`` (writes nothing; used by the tests). ``$WANDB_MODE`` fills it
            in the default config.
    """
    if mode == "auto":
        mode = "online" if wandb_api_key_configured() else "offline"
        if mode == "offline":
            log.warning("W&B: no API key configured, logging offline to %s/wandb; "
                        "upload later with `wandb sync %s/wandb/offline-run-*`.", save_dir, save_dir)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(project=project, name=name, save_dir=save_dir, mode=mode, **kwargs)
