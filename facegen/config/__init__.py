"""Configuration helpers: OmegaConf resolvers, logger factories, the run-folder layout."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def default_cache_dir() -> str:
    """``$FACEGEN_CACHE`` or ``~/.cache/facegen``: preprocessed data, mesh hierarchies, synthetic datasets."""
    return os.environ.get("FACEGEN_CACHE") or str(Path.home() / ".cache" / "facegen")


def register_resolvers() -> None:
    """Register facegen's OmegaConf resolvers (idempotent)."""
    if not OmegaConf.has_resolver("facegen_cache_dir"):
        OmegaConf.register_new_resolver("facegen_cache_dir", default_cache_dir)


register_resolvers()
