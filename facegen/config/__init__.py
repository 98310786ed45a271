"""Configuration helpers: OmegaConf resolvers, logger factories, the run-folder layout, config validation and the
command line (:mod:`facegen.config.schema`, :mod:`facegen.config.cli`, :mod:`facegen.config.run_folder`)."""
from __future__ import annotations

import functools
import os
import secrets
from pathlib import Path

from omegaconf import OmegaConf


def default_cache_dir() -> str:
    """``$FACEGEN_CACHE`` or ``~/.cache/facegen``: preprocessed data, mesh hierarchies, synthetic datasets."""
    return os.environ.get("FACEGEN_CACHE") or str(Path.home() / ".cache" / "facegen")


@functools.cache
def run_id() -> str:
    """A short id of this run, fixed for the process. ``conf/hydra/default.yaml`` appends it to the run folder's
    time stamp, so two runs started in the same second never share a folder.

    Under SLURM it is the job (and array task) and step id, ``j<job>[_<task>].<step>``, the same in every task of
    a multi-process job; elsewhere 6 random hex digits.
    """
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"j{job}" + (f"_{task}" if task else "") + f".{os.environ.get('SLURM_STEP_ID', '0')}"
    return secrets.token_hex(3)


def register_resolvers() -> None:
    """Register facegen's OmegaConf resolvers (idempotent): ``facegen_cache_dir``, ``facegen_run_id``."""
    if not OmegaConf.has_resolver("facegen_cache_dir"):
        OmegaConf.register_new_resolver("facegen_cache_dir", default_cache_dir)
    if not OmegaConf.has_resolver("facegen_run_id"):
        OmegaConf.register_new_resolver("facegen_run_id", run_id)


register_resolvers()
