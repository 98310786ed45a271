"""Runs survive a kill: ``python -m facegen.train`` killed with SIGKILL after its first checkpoint and resumed from
its ``last.ckpt`` ends in the state of a run that was never interrupted (real processes, tiny models).

StyleGAN2: ``global_step``, ``cur_nimg``, ``num_batches``, ADA ``p`` and every weight; FaceTuneGAN: ``global_step``
and every weight. Exact because the checkpoints hold the random states (``RngStateInCheckpoint``) and the train
loader's shuffling state (``facegen.data.loader``), and the checkpoints are written at epoch ends.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_train import TINY_MESHES, TINY_STYLEGAN2

from facegen.checkpoints import load

EPOCHS = 4
ENV = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
RUNS = {
    "stylegan2": [*TINY_STYLEGAN2, "+trainer.limit_train_batches=2"],
    "facetunegan": ["model=facetunegan", *TINY_MESHES, "callbacks.mesh_pictures=null"],
}


def command(name: str, run_dir: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "facegen.train", *RUNS[name], "logger=none", "evaluate_after_fit=false",
            f"trainer.max_epochs={EPOCHS}", f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache}", *extra]


def finish(process: subprocess.Popen, what: str) -> None:
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, f"{what} failed:\n{out[-4000:]}"


@pytest.mark.parametrize("name", sorted(RUNS))
def test_kill_and_resume_equals_the_uninterrupted_run(name, tmp_path):
    cache = tmp_path / "cache"
    spawn = dict(cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    whole = subprocess.Popen(command(name, tmp_path / "whole", cache), **spawn)
    killed = subprocess.Popen(command(name, tmp_path / "killed", cache), **spawn)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    first = load(last)
    assert first["epoch"] < EPOCHS - 1, "killed too late to test a resume"

    resumed = subprocess.Popen(command(name, tmp_path / "resumed", cache, f"ckpt_path={last}"), **spawn)
    finish(whole, "the uninterrupted run")
    finish(resumed, "the resumed run")
    a = load(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    b = load(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert b["global_step"] == a["global_step"] > first["global_step"]
    assert b["epoch"] == a["epoch"] == EPOCHS - 1
    if name == "stylegan2":
        assert b["stylegan2_state"] == a["stylegan2_state"]   # cur_nimg, num_batches, ada_p
        assert a["stylegan2_state"]["cur_nimg"] == EPOCHS * 2 * 4
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), f"{name}: {key} differs after the resume"
