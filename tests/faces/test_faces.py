"""facegen.faces without real photos: the FFHQ quad and transform, padding, inputs, and a missing dlib."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from facegen import faces
from facegen.faces import models


def upright_landmarks(cx=60.0, cy=50.0, eye=20.0, mouth=24.0):
    """68 points with eye centres at (cx -/+ eye/2, cy) and mouth corners at (cx -/+ 8, cy + mouth)."""
    lm = np.tile([cx, cy + 10.0], (68, 1))
    lm[36:42] = [cx - eye / 2, cy]
    lm[42:48] = [cx + eye / 2, cy]
    lm[48], lm[54] = [cx - 8, cy + mouth], [cx + 8, cy + mouth]
    return lm


def test_ffhq_quad_follows_the_recipe():
    # eye-to-eye 20, eye-to-mouth 24: half side max(2 * 20, 1.8 * 24) = 43.2; centre = eyes + 0.1 * (0, 24)
    quad = faces.ffhq_quad(upright_landmarks())
    c, h = np.array([60.0, 52.4]), 43.2
    assert np.allclose(quad, [c + [-h, -h], c + [-h, h], c + [h, h], c + [h, -h]])
    with pytest.raises(faces.FaceInputError, match=r"landmarks: expected shape \[68, 2\], got \[5, 2\]"):
        faces.ffhq_quad(np.zeros((5, 2)))


def test_a_rotated_face_gives_a_rotated_quad_and_level_eyes():
    angle = np.radians(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lm = (upright_landmarks() - 60) @ rot.T + 60
    eyes = faces.ffhq_eye_positions(lm, 256)
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-9                       # levelled
    # the eye-to-mouth term sets the size here: eye midpoint at (0.5, 0.5 - 0.1 / 3.6) of the crop
    assert np.allclose(eyes.mean(0), [0.5 * 256 - 0.5, (0.5 - 0.1 / 3.6) * 256 - 0.5])


def test_eye_term_template_positions():
    eyes = faces.ffhq_eye_positions(upright_landmarks(eye=30.0, mouth=24.0), 256)   # 2 * 30 > 1.8 * 24
    assert np.allclose(eyes[:, 0], np.array(faces.FFHQ_EYE_X) * 256 - 0.5)


def square_picture(lm, size=(140, 120)):
    """A bright square exactly on the FFHQ quad of ``lm`` (axis-aligned), dark elsewhere; dots at the eyes."""
    image = np.full((size[1], size[0], 3), 20, np.uint8)
    quad = faces.ffhq_quad(lm)
    x0, y0 = np.ceil(quad.min(0)).astype(int)
    x1, y1 = np.floor(quad.max(0)).astype(int)
    image[y0:y1 + 1, x0:x1 + 1] = 200
    for x, y in faces.eye_centres(lm).round().astype(int):
        image[y - 1:y + 2, x - 1:x + 2] = (255, 0, 0)
    return image


@pytest.mark.parametrize("resolution", [32, 64])
def test_align_ffhq_maps_the_quad_onto_the_crop_and_landmarks_with_it(resolution):
    lm = upright_landmarks()
    aligned = faces.align_ffhq(square_picture(lm), lm, resolution)
    assert aligned.image.shape == (resolution, resolution, 3) and aligned.image.dtype == np.uint8
    assert aligned.image[2:-2, 2:-2].max(-1).min() >= 150               # all of the crop is the bright square
    expected = faces.ffhq_eye_positions(lm, resolution)
    assert np.allclose(faces.eye_centres(aligned.landmarks), expected, atol=1e-6)
    assert np.allclose(faces.apply_transform(aligned.transform, lm), aligned.landmarks)
    # the red dots are where the transform says the eyes went
    red = (aligned.image[..., 0].astype(int) - aligned.image[..., 1]) > 60
    ys, xs = np.nonzero(red)
    left = xs < resolution / 2
    found = np.array([[xs[left].mean(), ys[left].mean()], [xs[~left].mean(), ys[~left].mean()]])
    assert np.abs(found - expected).max() < 0.1 * resolution


def test_align_ffhq_shrinks_big_photos_and_pads_outside_them():
    lm = upright_landmarks() * 8                                         # an 8x bigger face: shrink by 10
    picture = square_picture(lm, size=(140 * 8, 120 * 8))
    aligned = faces.align_ffhq(picture, lm, 32)
    assert not aligned.padded and aligned.image[2:-2, 2:-2].max(-1).min() >= 150
    # the recipe scales the quad by 1 / shrink while the photo's pixel centres move by (1 / shrink - 1) / 2:
    # the landmarks follow the photo exactly, the recipe's own geometry is off by that (0.2 px here)
    assert np.abs(faces.eye_centres(aligned.landmarks) - faces.ffhq_eye_positions(lm, 32)).max() < 0.3
    near_edge = upright_landmarks(cx=20.0, cy=20.0)                      # the quad leaves the photo
    padded = faces.align_ffhq(square_picture(near_edge), near_edge, 32)
    assert padded.padded and np.isfinite(padded.landmarks).all()


def test_inputs_are_checked():
    with pytest.raises(faces.FaceInputError, match="dtype uint8"):
        faces.as_rgb(np.zeros((8, 8, 3), np.float32))
    assert faces.as_rgb(np.zeros((8, 9), np.uint8)).shape == (8, 9, 3)
    assert faces.as_rgb(np.zeros((8, 9, 4), np.uint8)).shape == (8, 9, 3)
    with pytest.raises(faces.FaceInputError, match="resolution=2"):
        faces.align_ffhq(np.zeros((8, 8, 3), np.uint8), upright_landmarks(), 2)
    with pytest.raises(faces.FaceInputError, match=r"identity descriptors: expected shape \[..., 128\]"):
        faces.identity_distance(np.zeros(5), np.zeros(128))
    assert faces.identity_distance(np.zeros(128), np.full(128, 0.1)) == pytest.approx(np.sqrt(128) * 0.1)


@pytest.mark.skipif(not faces.available(), reason="dlib / face-recognition-models not installed")
def test_no_face_in_a_flat_picture():
    flat = np.full((96, 96, 3), 128, np.uint8)
    assert faces.detect(flat).shape == (0, 4)
    assert faces.largest_face(flat) == (None, 0)
    with pytest.raises(faces.NoFaceError, match="no face found"):
        faces.identity_embedding(flat)
    comparison = faces.paired_identity_distances([flat, flat], [flat, flat])
    assert comparison.no_face == 2 and comparison.n == 2 and np.isnan(comparison.mean)


@pytest.fixture
def fresh_models():
    models.clear_caches()
    yield
    models.clear_caches()


def test_missing_dlib_says_what_to_install(monkeypatch, fresh_models):
    monkeypatch.setitem(sys.modules, "dlib", None)                   # `import dlib` now raises ImportError
    picture = np.zeros((16, 16, 3), np.uint8)
    for call in (lambda: faces.detect(picture), lambda: faces.landmarks_68(picture, [0, 0, 10, 10]),
                 lambda: faces.identity_embedding(picture, upright_landmarks())):
        with pytest.raises(faces.FaceModelsMissing) as info:
            call()
        message = str(info.value)
        assert "dlib" in message and "pip install dlib-bin face-recognition-models" in message
        assert message.count(". ") == 0 and message.endswith(".")     # one sentence
    assert not faces.available()


def test_missing_model_files_say_what_to_install(monkeypatch, fresh_models):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)
    with pytest.raises(faces.FaceModelsMissing, match=r"shape_predictor_68_face_landmarks\.dat .*"
                                                      r"face-recognition-models.*pip install dlib-bin"):
        faces.landmarks_68(np.zeros((16, 16, 3), np.uint8), [0, 0, 10, 10])
    with pytest.raises(faces.FaceModelsMissing, match="dlib_face_recognition_resnet_model_v1"):
        models.face_recognizer()
