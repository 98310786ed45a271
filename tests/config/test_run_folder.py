"""Run folders: unique per run, owned while a run runs, cleaned of a killed save's temporaries, never left empty;
torch threads from the cores a process may use."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from facegen.config.run_folder import RunFolder
from facegen.errors import ConfigError, DatasetLayoutError
from facegen.utils import (
    atomic_write,
    available_cores,
    clean_orphan_temps,
    set_torch_threads,
)

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}


def orphan(folder: Path, name: str = ".last.ckpt.k2j4x_9a.tmp", age_s: float = 3600) -> Path:
    """A temporary file as a killed atomic_write leaves it (mkstemp name, no lock holder), ``age_s`` old."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"half a checkpoint")
    os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def test_orphan_temporaries_are_removed_and_logged(tmp_path, caplog):
    old = orphan(tmp_path)
    fresh = orphan(tmp_path, ".config.yaml.abcdefgh.tmp", age_s=0)   # a write may be under way: kept
    keep = [tmp_path / "last.ckpt", tmp_path / ".hidden.tmp", tmp_path / "notes.tmp"]
    for path in keep:
        path.write_text("mine")
    with caplog.at_level(logging.WARNING, logger="facegen.utils"):
        assert clean_orphan_temps(tmp_path) == [old]
    assert "left behind by a killed write" in caplog.text and old.name in caplog.text
    assert fresh.exists() and all(p.exists() for p in keep)


def test_a_temporary_being_written_is_not_removed(tmp_path):
    """A live writer holds the lock of its temporary file: the cleaner leaves it alone, whatever its age."""
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(30)")
    path = orphan(tmp_path)
    writer = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        assert clean_orphan_temps(tmp_path) == [] and path.exists()
    finally:
        writer.kill()
        writer.wait()
    assert clean_orphan_temps(tmp_path) == [path]


def test_run_start_cleans_its_folder_and_the_resumed_checkpoints_folder(tmp_path):
    old_run = tmp_path / "old" / "checkpoints"
    (old_run / "last.ckpt").parent.mkdir(parents=True)
    (old_run / "last.ckpt").write_bytes(b"ckpt")
    leftovers = [orphan(old_run), orphan(tmp_path / "new" / "checkpoints", ".epoch0001.ckpt.zz99aa11.tmp")]
    with RunFolder(tmp_path / "new", ckpt_path=old_run / "last.ckpt"):
        assert not any(p.exists() for p in leftovers)
    assert (old_run / "last.ckpt").read_bytes() == b"ckpt"


def test_atomic_write_leaves_no_temporary(tmp_path):
    atomic_write(tmp_path / "a.txt", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_failed_start_removes_the_folder_a_later_failure_marks_it(tmp_path):
    runs = tmp_path / "runs"
    hydra_made = runs / "facetunegan" / "2026-01-01_00-00-00_abc123"
    (hydra_made / ".hydra").mkdir(parents=True)
    (hydra_made / "train.log").write_text("log")
    with pytest.raises(DatasetLayoutError):
        with RunFolder(hydra_made):
            raise DatasetLayoutError("data.root=/nonexistent: not found")
    assert not runs.exists()   # the run folder and the folders made for it alone

    trained = tmp_path / "trained"
    with pytest.raises(RuntimeError):
        with RunFolder(trained, trained=lambda: True):
            (trained / "checkpoints").mkdir()
            raise RuntimeError("killed by a bug at step 40")
    assert "killed by a bug at step 40" in (trained / "failed.txt").read_text()

    here = tmp_path / "here"               # hydra.run.dir=<cwd>/run: the working directory itself stays
    (here / "run").mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(here)
    try:
        with pytest.raises(ConfigError):
            with RunFolder(here / "run"):
                raise ConfigError("trainer.max_epochs: expected int or null, got 'abc'")
    finally:
        os.chdir(cwd)
    assert here.is_dir() and not (here / "run").exists()

    existing = tmp_path / "existing"       # a folder that held something before the run is never removed
    (existing / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError):
        with RunFolder(existing):
            raise ConfigError("trainer.max_epochs: expected int or null, got 'abc'")
    assert (existing / "checkpoints").is_dir() and (existing / "failed.txt").is_file()


def test_a_folder_in_use_is_refused(tmp_path):
    with RunFolder(tmp_path / "run"):
        code = ("import sys; from facegen.config.run_folder import RunFolder\n"
                "try:\n    RunFolder(sys.argv[1]).__enter__()\nexcept Exception as e:\n    print(e)")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                             env=ENV, timeout=120).stdout
    assert "is in use by another running process" in out
    with RunFolder(tmp_path / "run"):   # free again once the first run ended
        pass


def test_two_runs_started_together_get_two_folders(tmp_path):
    code = ("import sys; import facegen.config; from hydra import compose, initialize_config_dir\n"
            "from hydra.core.hydra_config import HydraConfig\n"
            "with initialize_config_dir(config_dir=sys.argv[1], version_base='1.3'):\n"
            "    cfg = compose('train', return_hydra_config=True)\n"
            "HydraConfig.instance().set_config(cfg)\nprint(cfg.hydra.run.dir)")
    runs = [subprocess.Popen([sys.executable, "-c", code, str(REPO / "conf")], stdout=subprocess.PIPE, text=True,
                             env=ENV) for _ in range(2)]
    folders = [p.communicate(timeout=120)[0].strip() for p in runs]
    assert all(p.returncode == 0 for p in runs) and folders[0] != folders[1]
    assert all(f.startswith("./runs/facetunegan/") for f in folders)


def test_run_id_under_slurm_is_the_job(monkeypatch):
    from facegen.config import run_id

    run_id.cache_clear()
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    try:
        assert run_id() == "j4242.0"
    finally:
        run_id.cache_clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True)
    assert "${facegen_run_id:}" in str(cfg.hydra.run._get_node("dir")._value())


def test_available_cores_respects_omp_slurm_and_affinity():
    assert available_cores({"OMP_NUM_THREADS": "3", "SLURM_CPUS_PER_TASK": "8"}) == (3, "OMP_NUM_THREADS")
    assert available_cores({"OMP_NUM_THREADS": "x", "SLURM_CPUS_PER_TASK": "8"}) == (8, "SLURM_CPUS_PER_TASK")
    assert available_cores({}) == (len(os.sched_getaffinity(0)), "CPU affinity")


def test_set_torch_threads_logs_the_number(monkeypatch, caplog):
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    try:
        with caplog.at_level(logging.INFO, logger="facegen.utils"):
            assert set_torch_threads(processes=2) == 1 and torch.get_num_threads() == 1
        assert "torch intra-op threads: 1 (OMP_NUM_THREADS: 2 cores, shared by 2 processes)" in caplog.text
    finally:
        torch.set_num_threads(threads)
