"""Small shared helpers: atomic writes (and cleaning up after a killed one), cache locks, seeding, CPU threads."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning
import torch
from filelock import FileLock

try:  # POSIX: a temporary file is locked while it is written, so a cleaner can tell a live write from an orphan
    import fcntl
except ImportError:  # pragma: no cover  (Windows: orphans are told by age alone)
    fcntl = None

log = logging.getLogger(__name__)

# ``.<name>.<8 random characters>.tmp``: the names :func:`atomic_write` gives its temporary files (mkstemp)
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file atomically through a path: yields a temporary path in the same folder, which becomes ``path``
    (``os.replace``) when the block ends without error and is removed otherwise.

    The temporary name is unique per write (``.<name>.<8 random characters>.tmp``, mkstemp), so concurrent
    writers never share one, and it is locked (``flock``) while written: one left behind by a killed process is
    removed by :func:`clean_orphan_temps`. Parent folders are created; the file gets the usual permissions.
    For large outputs written piece by piece (a dataset zip); :func:`atomic_write` writes bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)  # releases the lock


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``
    (:func:`atomic_file`).

    A reader never sees a half-written file, and a crash leaves the previous version intact.
    Parent folders are created.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def _in_use(path: Path) -> bool:
    """True when another process holds the write lock of ``path`` (a temporary file still being written)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # gone or unreadable: leave it alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def clean_orphan_temps(folder: str | os.PathLike, min_age_s: float = 2.0) -> list[Path]:
    """Remove the temporary files that killed :func:`atomic_write` calls left in ``folder`` (not recursive).

    A file counts as an orphan when its name is an :func:`atomic_write` temporary name
    (``.<name>.<8 characters>.tmp``, e.g. ``.last.ckpt.k2j4x_9a.tmp`` of a checkpoint save killed by
    ``kill -9``), no live process holds its write lock, and it was not modified in the last ``min_age_s``
    seconds. Each removal is logged. Returns the removed paths (none when the folder does not exist).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for path in sorted(folder.iterdir()):
        if not TEMP_NAME.match(path.name) or not path.is_file():
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        if now - stat.st_mtime < min_age_s or _in_use(path):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
        log.warning("removed %s (%.1f MB), left behind by a killed write", path, stat.st_size / 2**20)
    return removed


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float = -1) -> Iterator[None]:
    """Hold an inter-process lock on ``path`` (a lock file, created with its folder) while the block runs.

    Used where two processes could build the same cache at once (synthetic faces, mesh collections): the
    second waits, then finds the first one's result. ``timeout < 0`` waits for ever. The lock file stays.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path), timeout=timeout):
        yield


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (and dataloader workers) through Lightning."""
    lightning.seed_everything(seed, workers=True, verbose=False)


def available_cores(environ: dict[str, str] | None = None) -> tuple[int, str]:
    """``(cores, source)``: how many CPU cores this process may use, and where that number came from.

    In order: ``OMP_NUM_THREADS`` (the user's explicit choice), ``SLURM_CPUS_PER_TASK`` (the allocation of a
    SLURM job), the process's CPU affinity (``os.sched_getaffinity``: taskset, cgroups, containers), and
    ``os.cpu_count()``. Values that are not positive integers are skipped.
    """
    environ = os.environ if environ is None else environ
    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        value = str(environ.get(name, "")).strip()
        if value.isdigit() and int(value) > 0:
            return int(value), name
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0))), "CPU affinity"
    return max(1, os.cpu_count() or 1), "os.cpu_count()"


def set_torch_threads(processes: int = 1) -> int:
    """Set torch's intra-op threads to the cores this process may use (:func:`available_cores`), divided among
    ``processes`` processes sharing them (CPU DDP), and log the number. Returns it.

    More threads than cores makes them spin against each other: on a busy 2-core machine a run was about 8x
    slower with torch's default thread count than with one thread.
    """
    cores, source = available_cores()
    threads = max(1, cores // max(1, processes))
    torch.set_num_threads(threads)
    log.info("torch intra-op threads: %d (%s: %d core%s%s)", threads, source, cores, "" if cores == 1 else "s",
             f", shared by {processes} processes" if processes > 1 else "")
    return threads
