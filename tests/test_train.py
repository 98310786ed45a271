"""Entry points end to end: train -> checkpoint/pictures/metric tables -> evaluate; resume; 2-process DDP."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from facegen.train import train

REPO = Path(__file__).resolve().parents[1]
TINY_MESHES = [
    "data.n_identities=10", "data.test_fraction=0.3", "data.samples_per_expression=1", "data.batch_size=8",
    "model.evaluation.val_triplets=4", "model.evaluation.eval_triplets=8",
    "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1",
    "callbacks.progress_bar=null", "callbacks.mesh_pictures.size=64",
]


def run_module(module: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "-m", module, *overrides], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def test_facetunegan_train_then_evaluate_from_another_directory(tmp_path):
    run_dir, eval_dir, cache = tmp_path / "run", tmp_path / "eval", tmp_path / "cache"
    run_module("facegen.train", "model=facetunegan", "trainer.max_epochs=1", "logger=csv",
               f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache}", *TINY_MESHES, cwd=tmp_path)
    assert (run_dir / "config.yaml").is_file()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    tables = {p.stem for p in (run_dir / "metrics").glob("*.md")}
    assert {"test_reconstruction", "test_identity_decomposition", "test_neutralisation",
            "test_expression_transfer"} <= tables
    assert any((run_dir / "pictures").rglob("*.png"))
    transfer = (run_dir / "metrics" / "test_expression_transfer.md").read_text()
    assert "all" in transfer and "deformation" in transfer.lower()

    run_module("facegen.evaluate", f"ckpt_path={ckpt}", "logger=none", f"hydra.run.dir={eval_dir}",
               f"paths.cache_dir={cache}", cwd=tmp_path)
    assert (eval_dir / "metrics" / "test_expression_transfer.csv").is_file()


def compose_train(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=[
            "model=facetunegan", "logger=none", "run_name=test", "evaluate_after_fit=false",
            f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}",
            *TINY_MESHES, *overrides])


def test_resume_continues_step_count(tmp_path):
    first = train(compose_train(tmp_path, "trainer.max_epochs=1"))
    ckpt = Path(first["output_dir"]) / "checkpoints" / "last.ckpt"
    steps_after_one_epoch = torch.load(ckpt, weights_only=False)["global_step"]
    assert steps_after_one_epoch == 6  # 3 batches x (one D step + one G step)

    train(compose_train(tmp_path, "trainer.max_epochs=2", f"ckpt_path={ckpt}"))
    resumed = torch.load(ckpt, weights_only=False)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 2 * steps_after_one_epoch


def test_two_process_cpu_ddp(tmp_path):
    result = train(compose_train(tmp_path, "trainer=ddp_cpu", "trainer.max_epochs=1"))
    checkpoint = torch.load(Path(result["output_dir"]) / "checkpoints" / "last.ckpt", weights_only=False)
    # each of the 2 ranks sees half of the 3 limited batches' worth of data; both ran the same number of steps
    assert checkpoint["global_step"] > 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_stylegan2_train_on_synthetic_faces(tmp_path):
    run_dir = tmp_path / "run"
    run_module("facegen.train", "model=stylegan2", "data.n=16", "data.resolution=32", "data.batch_size=4",
               "model.generator.channel_base=256", "model.generator.channel_max=32", "model.generator.z_dim=32",
               "model.generator.w_dim=32", "model.generator.mapping_layers=2", "trainer.max_epochs=1",
               "+trainer.limit_train_batches=2",
               "callbacks.progress_bar=null", "logger=csv", f"hydra.run.dir={run_dir}",
               f"paths.cache_dir={tmp_path / 'cache'}", cwd=tmp_path)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert any(k.startswith("G_ema.") for k in checkpoint["state_dict"])


TINY_STYLEGAN2 = [
    "model=stylegan2", "data.n=32", "data.resolution=32", "data.batch_size=4",
    "model.generator.channel_base=256", "model.generator.channel_max=32", "model.generator.z_dim=32",
    "model.generator.w_dim=32", "model.generator.mapping_layers=2", "model.augment.kimg=0.01",
    "model.augment.interval=1", "model.loss.pl_interval=2", "model.loss.r1_interval=2", "model.grid.every_kimg=1000",
    "callbacks.progress_bar=null",
]


def test_stylegan2_two_process_cpu_ddp(tmp_path):
    """StyleGAN2 under 2-process DDP: image count and ADA p are global, both ranks agree."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            *TINY_STYLEGAN2, "trainer=ddp_cpu", "trainer.max_epochs=1", "+trainer.limit_train_batches=3",
            "logger=none", "run_name=test", "evaluate_after_fit=false",
            f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}"])
    result = train(cfg)
    checkpoint = torch.load(Path(result["output_dir"]) / "checkpoints" / "last.ckpt", weights_only=False)
    state = checkpoint["stylegan2_state"]
    # 3 batches of 4 images on each of 2 ranks: the image count is global (NVlabs counts all GPUs' images)
    assert state["num_batches"] == 3 and state["cur_nimg"] == 3 * 4 * 2
    assert 0.0 <= state["ada_p"] <= 1.0  # adjusted from the sign statistics summed over both ranks
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_stylegan2_resume_through_the_entry_point(tmp_path):
    """A StyleGAN2 run started from the Hydra config resumes from its last.ckpt (Lightning loads it with
    weights_only=True, so the hyper-parameters must hold plain containers) and continues the image count."""
    def run(*overrides: str) -> dict:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[
                *TINY_STYLEGAN2, "+trainer.limit_train_batches=2", "logger=none", "run_name=test",
                "evaluate_after_fit=false", f"paths.output_dir={tmp_path / 'run'}",
                f"paths.cache_dir={tmp_path / 'cache'}", *overrides])
        return train(cfg)

    ckpt = Path(run("trainer.max_epochs=1")["output_dir"]) / "checkpoints" / "last.ckpt"
    first = torch.load(ckpt, weights_only=True)["stylegan2_state"]
    assert first["cur_nimg"] == 2 * 4
    run("trainer.max_epochs=2", f"ckpt_path={ckpt}")
    resumed = torch.load(ckpt, weights_only=True)["stylegan2_state"]
    assert resumed["cur_nimg"] == 2 * 2 * 4 and resumed["num_batches"] == 4
