"""Two processes started together on a fresh cache both succeed and read the same data (no shared temporary
name, a lock where both would build the same cache)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facegen.data.loader import EpochRandomSampler, make_loader

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}

BUILD = {
    "synthetic_faces": (
        "import sys, hashlib; from facegen.data.synthetic import SyntheticFacesDataModule\n"
        "dm = SyntheticFacesDataModule(cache_dir=sys.argv[1], n=24, resolution=16, render={'supersample': 1})\n"
        "dm.setup('fit')\n"
        "print(hashlib.sha1((dm.folder / 'faces.zip').read_bytes() + (dm.folder / 'params.npz').read_bytes())"
        ".hexdigest(), len(dm.train_set))"),
    "synthetic_meshes": (
        "import sys, hashlib; from facegen.data.meshes import MeshDataModule\n"
        "dm = MeshDataModule(source='procedural', cache_dir=sys.argv[1], n_identities=6, samples_per_expression=1,"
        " test_fraction=0.2)\n"
        "dm.setup('fit')\n"
        "print(hashlib.sha1(dm.collection.vertices.tobytes()).hexdigest(), len(dm.collection))"),
}


@pytest.mark.parametrize("kind", sorted(BUILD))
def test_two_processes_on_a_fresh_cache(kind, tmp_path):
    cache = tmp_path / "cache"
    processes = [subprocess.Popen([sys.executable, "-c", BUILD[kind], str(cache)], env=ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in processes]
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err[-3000:]
    assert results[0][0] == results[1][0] and results[0][0].strip()
    leftovers = [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_epoch_zero_order_is_a_plain_shuffled_loaders_and_later_epochs_depend_on_the_epoch_alone():
    import torch
    from torch.utils.data import DataLoader

    data = list(range(50))
    plain = DataLoader(data, batch_size=50, shuffle=True, generator=torch.Generator().manual_seed(3))
    ours = make_loader(data, 50, shuffle=True, seed=3)
    assert next(iter(ours)).tolist() == next(iter(plain)).tolist()      # first epochs unchanged by the redesign
    sampler = ours.sampler
    assert isinstance(sampler, EpochRandomSampler)
    sampler.set_epoch(2)
    epoch2 = next(iter(ours)).tolist()
    resumed = make_loader(data, 50, shuffle=True, seed=3, epoch=2)       # a loader made when a run resumes at epoch 2
    assert next(iter(resumed)).tolist() == epoch2 != list(range(50))
    assert hashlib.sha1(bytes(epoch2)).digest() != hashlib.sha1(bytes(next(iter(plain)).tolist())).digest()
