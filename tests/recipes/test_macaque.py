"""The macaque recipe end to end on a tiny config, and skipping of finished stages on a re-run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from facegen.evaluate import evaluate
from facegen.train import train

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "data.resolution=32", "data.channels=1", "data.batch_size=4",
    "model.generator.z_dim=16", "model.generator.w_dim=16", "model.generator.mapping_layers=2",
    "model.generator.channel_base=128", "model.generator.channel_max=16",
    "model.grid.every_kimg=0", "model.loss.r1_interval=2", "model.loss.pl_interval=2",
    "recipe.kimg=0.008", "recipe.augment.frames_per_still=2", "recipe.projection.num_steps=3",
    "recipe.projection.batch_size=8", "recipe.selection.fraction=0.5", "recipe.stage2.crop=8",
    "recipe.stylespace.num_samples=1", "recipe.stylespace.top_k=2",
    "recipe.evaluation.num_samples=16", "recipe.evaluation.regressor_steps=5",
    "callbacks.progress_bar=null", "logger=none", "trainer.enable_model_summary=false",
]


def faces(folder: Path, n: int = 6) -> Path:
    """``n`` 40x40 greyscale 'faces': a bright disc with two dark eyes and a mouth, jittered."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :40]
    for i in range(n):
        dx, dy = rng.integers(-2, 3, 2)
        face = ((xx - 20 - dx) ** 2 + (yy - 21 - dy) ** 2 < 15 ** 2) * 200.0 + 30
        for ex in (14, 26):
            face[(xx - ex - dx) ** 2 + (yy - 16 - dy) ** 2 < 5] = 20
        face[28 + dy:30 + dy, 15 + dx:25 + dx] = 40
        Image.fromarray(face.astype(np.uint8)).save(folder / f"subject{i:02d}.{'happy' if i % 2 else 'sad'}", "GIF")
    return folder


def compose_recipe(tmp_path: Path, data: Path, *extra: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=[
            "experiment=stylegan2_macaque", f"data.root={data}", "run_name=macaque_test",
            f"paths.output_dir={tmp_path / 'recipe'}", f"paths.cache_dir={tmp_path / 'cache'}", *TINY, *extra])


def test_recipe_end_to_end_then_skips_finished_stages(tmp_path):
    data = faces(tmp_path / "photos")
    out = Path(train(compose_recipe(tmp_path, data))["output_dir"])
    for path in ["stage1_originals/checkpoints/last.ckpt", "augment/dataset.zip", "augment/preview.png",
                 "projection/latents.npy", "selection/selected.zip", "selection/coverage.png",
                 "ablation_augmented/done.json", "ablation_selected/done.json", "stage2_region/done.json",
                 "stylespace/directions.json", "stylespace/edit_eyes.png", "stylespace/mixing.png",
                 "metrics/ablation.md", "pictures/samples_stage2_region.png"]:
        assert (out / path).is_file(), path
    latents = np.load(out / "projection" / "latents.npy")
    assert latents.shape == (6 * 3, 16)  # 6 stills + 2 frames each, w_dim 16
    assert json.loads((out / "selection" / "done.json").read_text())["size"] == 9
    done = json.loads((out / "stage2_region" / "done.json").read_text())
    assert done["region"] is True and done["cur_nimg"] >= 8
    import torch

    state = torch.load(out / "stage2_region" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert any(k.startswith("region_D.") for k in state)
    assert not any(k.startswith("region_D.") for k in torch.load(
        out / "ablation_selected" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"])
    table = (out / "metrics" / "ablation.md").read_text()
    for row in ["originals only", "+ augmentation", "+ selection", "+ region loss", "fid_randfeat", "expr_spread"]:
        assert row in table, row

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("done.json")}
    (out / "metrics" / "ablation.md").unlink()
    train(compose_recipe(tmp_path, data))  # re-run: every stage is skipped, only the table is rewritten
    assert {p: p.stat().st_mtime_ns for p in out.rglob("done.json")} == stamps
    assert (out / "metrics" / "ablation.md").is_file()

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[f"recipe_dir={out}", "logger=none",
                                                         f"paths.output_dir={tmp_path / 'eval'}"])
    rows = evaluate(cfg)["ablation"]
    assert [r["row"] for r in rows][:4] == ["originals only", "+ augmentation", "+ selection", "+ region loss"]


def test_missing_root_is_a_clear_error(tmp_path):
    from facegen.errors import DatasetLayoutError

    with pytest.raises(DatasetLayoutError, match="does not exist"):
        train(compose_recipe(tmp_path, tmp_path / "nowhere"))
