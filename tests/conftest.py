"""Shared pytest fixtures: real-data location, small meshes, quiet loggers."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACEGEN_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("WANDB_MODE", "disabled")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def one_thread():
    """One intra-op thread for tiny networks: on a shared 2-core machine two threads spin against each other.

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_data() -> Path:
    """Root of the real face data (``../shared/data``); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real face data not found at {SHARED_DATA} (set FACEGEN_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def seed() -> int:
    torch.manual_seed(0)
    np.random.seed(0)
    return 0


@pytest.fixture
def icosphere():
    """A small closed triangle mesh: (vertices [162, 3] float64, faces [320, 3] int64)."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=2)
    return np.asarray(m.vertices, dtype=np.float64), np.asarray(m.faces, dtype=np.int64)
