"""StyleRig end to end through the entry points: train DFR, then StyleRig on it, then evaluate a checkpoint."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from facegen.checkpoints import load
from facegen.errors import CheckpointError
from facegen.evaluate import evaluate
from facegen.models.stylerig import DFR, StyleRig
from facegen.models.stylerig.stylerig_module import read_dfr_checkpoint
from facegen.train import train

REPO = Path(__file__).resolve().parents[3]
TINY = ["data.n_train=8", "data.n_val=4", "data.n_test=6", "data.batch_size=4", "data.truth.n=2",
        "trainer.max_epochs=1", "callbacks.progress_bar=null", "logger=csv", "run_name=test",
        "+data.random_generator={z_dim: 16, w_dim: 16, img_resolution: 32, mapping_layers: 2, channel_base: 256, "
        "channel_max: 16}"]


def _compose(config: str, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name=config, overrides=list(overrides))


def test_dfr_then_stylerig_then_evaluate(tmp_path):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    dfr_dir = tmp_path / "dfr"
    train(_compose("train", "model=dfr", "model.network.hidden=[16]", "model.evaluation.projection_steps=2", *TINY,
                   cache, f"paths.output_dir={dfr_dir}"))
    dfr_ckpt = dfr_dir / "checkpoints" / "last.ckpt"
    assert dfr_ckpt.is_file()
    assert {"test_dfr_self_supervised", "test_dfr_ground_truth"} <= {p.stem for p in (dfr_dir / "metrics").glob("*.md")}
    truth = (dfr_dir / "metrics" / "test_dfr_ground_truth.md").read_text()
    assert "dfr(projected w)" in truth and "rotation_deg" in truth
    restored = DFR.from_checkpoint(dfr_ckpt)
    w = torch.randn(2, restored.G.num_ws, restored.G.w_dim)
    stored = load(dfr_ckpt)                                           # weights_only=True reads it
    trained_state = stored["state_dict"]
    assert stored["hyper_parameters"]["network"]["hidden"] == [16]    # grouped blocks, plain containers
    assert restored.evaluation.projection_steps == 2 and restored.optimizer_spec["lr"] == 1e-4
    assert torch.equal(restored.dfr.net[-1].weight, trained_state["dfr.net.2.weight"])
    assert restored(w).shape == (2, restored.layout.dim)

    rig_dir = tmp_path / "rig"
    train(_compose("train", "model=stylerig", f"dfr_path={dfr_ckpt}", "model.evaluation.pairs=6",
                   "model.evaluation.grid_size=2", "model.evaluation.sweep_latents=1", "model.evaluation.sweep_steps=3",
                   *TINY, cache, f"paths.output_dir={rig_dir}"))
    rig_ckpt = rig_dir / "checkpoints" / "last.ckpt"
    tables = {p.stem for p in (rig_dir / "metrics").glob("*.md")}
    assert {"test_edit_accuracy", "test_preservation", "test_identity"} <= tables
    pictures = {p.parent.name for p in (rig_dir / "pictures").rglob("*.png")}
    assert {"test_edit_grid_pose", "test_edit_grid_expression", "test_edit_grid_illumination", "test_sweep_pose_yaw",
            "test_sweep_expression_jaw_open", "test_sweep_illumination_light_direction"} <= pictures
    rig = StyleRig.from_checkpoint(rig_ckpt)                      # needs neither dfr_path nor the generator file
    assert torch.equal(rig.dfr.net[-1].weight, restored.dfr.net[-1].weight)
    assert set(rig.rignets) == {"pose", "expression", "illumination"}
    assert rig.evaluation.pairs == 6 and rig.loss.w_edit == 300.0 and not rig.training
    with pytest.raises(CheckpointError, match="not a DFR checkpoint"):
        read_dfr_checkpoint(rig_ckpt)

    eval_dir = tmp_path / "eval"
    result = evaluate(_compose("evaluate", f"ckpt_path={rig_ckpt}", "logger=none", f"paths.output_dir={eval_dir}"))
    assert {"edit_accuracy", "preservation", "identity"} <= set(result)
    assert (eval_dir / "metrics" / "test_identity.csv").is_file()


def test_stylerig_refuses_a_dfr_of_another_generator(tmp_path):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    dfr_dir = tmp_path / "dfr"
    train(_compose("train", "model=dfr", "model.network.hidden=[8]", "data.truth.n=0", "evaluate_after_fit=false",
                   *TINY, cache, f"paths.output_dir={dfr_dir}"))
    other = [o for o in TINY if not o.startswith("+data.random_generator")]
    other.append("+data.random_generator={z_dim: 16, w_dim: 16, img_resolution: 32, mapping_layers: 2, "
                 "channel_base: 256, channel_max: 16}")
    with pytest.raises(CheckpointError, match="another generator"):
        train(_compose("train", "model=stylerig", f"dfr_path={dfr_dir / 'checkpoints' / 'last.ckpt'}", "seed=1",
                       *other, cache, f"paths.output_dir={tmp_path / 'rig'}"))
