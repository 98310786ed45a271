"""The run folder of one run: owned while it runs, cleaned of a killed save's leftovers, never left empty.

``runs/<run_name>/<YYYY-mm-dd_HH-MM-SS>_<id>/`` (``conf/hydra/default.yaml``; the id is
:func:`facegen.config.run_id`, so two runs started in the same second get two folders). :class:`RunFolder`:

- holds a lock (``.run.lock``) for the run's duration: a second process pointed at the same folder is refused;
- removes the temporary files a killed checkpoint save left there, in its ``checkpoints/`` and in the folder of
  the checkpoint it resumes from (:func:`facegen.utils.clean_orphan_temps`; logged);
- when the run fails before its first training step (a bad config, a missing data root) and the folder held
  nothing before it started (Hydra's ``.hydra/`` and log aside), removes the folder, so failed starts leave
  nothing behind; when it fails later, keeps the folder (its last good checkpoint) and writes ``failed.txt``
  with the error.

Only the rank-0 process acts (DDP ranks started as subprocesses run the same entry point).
"""
from __future__ import annotations

import logging
import os
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from facegen.errors import ConfigError
from facegen.utils import atomic_write, clean_orphan_temps

log = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"
# what Hydra writes into a run folder before the run's own code starts
HYDRA_ENTRIES = (".hydra", LOCK_NAME)


def is_rank_zero() -> bool:
    """True in the process that owns the run folder: no DDP rank, or rank 0 (``RANK``/``LOCAL_RANK``/``NODE_RANK``
    and ``SLURM_PROCID`` unset or 0)."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def holds_nothing(folder: Path) -> bool:
    """True when ``folder`` is absent or holds only what Hydra writes before a run starts (``.hydra/``, ``*.log``)."""
    if not folder.is_dir():
        return True
    return all(p.name in HYDRA_ENTRIES or (p.suffix == ".log" and p.is_file()) for p in folder.iterdir())


class RunFolder:
    """Context manager around one run in ``path`` (see the module docstring).

    Args:
        path: the run folder (``cfg.paths.output_dir``).
        ckpt_path: the checkpoint the run resumes from, if any (its folder is cleaned of orphan temporaries).
        trained: called after a failure: did the run take a training step? (``lambda: trainer.global_step > 0``;
            set :attr:`trained` once the trainer exists). Until set, a failure counts as before the first step.

    Raises (on entry):
        ConfigError: another live process holds the folder.
    """

    def __init__(self, path: str | os.PathLike, ckpt_path: str | os.PathLike | None = None,
                 trained: Callable[[], bool] | None = None):
        self.path = Path(path)
        self.ckpt_path = None if ckpt_path is None else Path(ckpt_path)
        self.trained = trained or (lambda: False)
        self.owner = is_rank_zero()
        self.was_empty = holds_nothing(self.path)
        self._lock: FileLock | None = None

    def __enter__(self) -> RunFolder:
        if not self.owner:
            return self
        if (self.path / "config.yaml").is_file():
            log.warning("run folder %s already holds a run's config.yaml: this run writes into it too", self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path / LOCK_NAME), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            self._lock = None
            raise ConfigError(f"run folder {self.path} is in use by another running process; give this run its "
                              "own folder (the default hydra.run.dir is unique per run)") from None
        folders = [self.path, self.path / "checkpoints"]
        if self.ckpt_path is not None:
            folders.append(self.ckpt_path.parent)
        for folder in dict.fromkeys(p.resolve() for p in folders):
            clean_orphan_temps(folder)
        return self

    def __exit__(self, kind, error, tb) -> None:
        if not self.owner:
            return
        try:
            if error is not None:
                self._failed(error)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            if error is None or self.path.is_dir():
                return
            cwd = Path.cwd().resolve()
            for parent in list(self.path.parents)[:2]:  # runs/<run_name>/ and runs/, when made for this run alone
                if parent.resolve() in (cwd, *cwd.parents) or not parent.is_dir() or any(parent.iterdir()):
                    break
                parent.rmdir()

    def _failed(self, error: BaseException) -> None:
        try:
            trained = bool(self.trained())
        except Exception:
            trained = True  # cannot tell: keep everything
        if not trained and self.was_empty:
            shutil.rmtree(self.path, ignore_errors=True)
            log.info("the run failed before its first step (nothing written): removed its folder %s", self.path)
            return
        if self.path.is_dir():
            text = "".join(traceback.format_exception_only(type(error), error))
            atomic_write(self.path / "failed.txt", text)
            log.error("run failed; its folder %s is kept and marked (failed.txt)", self.path)
