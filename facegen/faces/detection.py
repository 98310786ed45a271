"""Face boxes and 68 landmarks on real photos with dlib (see :mod:`facegen.faces.models` for the models).

Coordinates are pixels of the image given, ``(x, y)`` = (column, row), pixel centres at integers (the
convention of :mod:`facegen.data.keypoints` and of dlib itself). Boxes are ``[x0, y0, x1, y1]`` with
``x1``/``y1`` the last pixel inside (dlib's ``rectangle`` convention). Landmarks are in the iBUG 300-W /
Multi-PIE 68-point order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47 with 36-41 the subject's right eye on
the image's left, mouth 48-67), the order of facegen's 68-point template
(:data:`facegen.data.keypoints.MULTIPIE_68_REGIONS`, ``MorphableModel.landmark_indices``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from facegen.faces.models import (
    FaceInputError,
    cnn_detector,
    dlib_module,
    frontal_detector,
    shape_predictor,
)
from facegen.shapes import assert_shape

DETECT_MIN_SIDE = 320
"""``upsample=None`` doubles the image inside dlib's detector until its shorter side is at least this many
pixels (at most 3 times): dlib's HOG window is 80 px, so a 64 px face crop needs 3 doublings, a 256 px photo 1."""
LANDMARK_MIN_BOX = 100
"""Faces whose box is smaller than this (pixels) are upsampled (bicubic, by an integer factor) before the
landmark predictor runs; the landmarks are mapped back to the image's pixels."""


def as_rgb(image) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB of ``image``: a PIL image, or a uint8 array ``[H, W]`` (grey), ``[H, W, 1]``,
    ``[H, W, 3]`` or ``[H, W, 4]`` (alpha dropped).

    Raises:
        FaceInputError: another type, dtype or shape.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise FaceInputError(f"image: expected dtype uint8 (pixels 0..255), got {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    assert_shape(array, ["H", "W", "C"], "image", error=FaceInputError, hint="uint8 [H, W] grey or [H, W, 3] RGB")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif array.shape[-1] == 4:
        array = array[..., :3]
    elif array.shape[-1] != 3:
        raise FaceInputError(f"image: expected 1, 3 or 4 channels, got {array.shape[-1]}")
    return np.ascontiguousarray(array)


def _upsample_count(image: np.ndarray) -> int:
    side = min(image.shape[:2])
    return int(min(3, max(0, math.ceil(math.log2(DETECT_MIN_SIDE / max(side, 1))))))


@dataclass
class Face:
    """One detected face: ``box [4]`` float64 ``(x0, y0, x1, y1)`` pixels, detector ``score`` (HOG: SVM margin;
    CNN: confidence), and ``landmarks [68, 2]`` float64 pixels when computed."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return float(max(0.0, self.box[2] - self.box[0] + 1) * max(0.0, self.box[3] - self.box[1] + 1))


def detect(image, detector: str = "hog", upsample: int | None = None, threshold: float = 0.0,
           with_scores: bool = False):
    """Face boxes of ``image``, largest first.

    Args:
        image: see :func:`as_rgb` (greyscale and RGBA are converted).
        detector: ``"hog"`` (dlib's frontal HOG + linear SVM detector; fast, frontal faces) or ``"cnn"`` (dlib's
            MMOD CNN, ``mmod_human_face_detector.dat``; also profile-ish faces, about 10x slower on CPU).
        upsample: image doublings inside the detector (dlib's ``upsample_num_times``); None = enough that the
            shorter side reaches :data:`DETECT_MIN_SIDE` pixels.
        threshold: HOG only: minimum SVM score (dlib's ``adjust_threshold``, 0 = dlib's default).
        with_scores: also return the scores.

    Returns:
        ``boxes [N, 4]`` float64 ``(x0, y0, x1, y1)`` pixels sorted by area, descending (``N = 0`` when no face
        is found); with ``with_scores`` a tuple ``(boxes, scores [N])``.

    Raises:
        FaceModelsMissing: dlib (or, for ``"cnn"``, the models package) is not installed.
        FaceInputError: a bad image or detector name.
    """
    rgb = as_rgb(image)
    times = _upsample_count(rgb) if upsample is None else int(upsample)
    if detector == "hog":
        rects, scores, _ = frontal_detector().run(rgb, times, float(threshold))
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
        scores = list(scores)
    elif detector == "cnn":
        found = cnn_detector()(rgb, times)
        boxes = [(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()) for d in found]
        scores = [d.confidence for d in found]
    else:
        raise FaceInputError(f"detector={detector!r}: expected 'hog' or 'cnn'")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1), kind="stable")
    return (boxes[order], scores[order]) if with_scores else boxes[order]


def _box(box) -> np.ndarray:
    box = np.asarray(box, np.float64)
    assert_shape(box, [4], "box", error=FaceInputError, hint="(x0, y0, x1, y1) pixels")
    if not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise FaceInputError(f"box {box.tolist()}: expected finite (x0, y0, x1, y1) pixels with x1 > x0, y1 > y0")
    return box


def shape_object(rgb: np.ndarray, box, points: int = 68):
    """dlib ``full_object_detection`` of the ``points``-landmark predictor in ``box`` (pixels of ``rgb``)."""
    dlib = dlib_module()
    x0, y0, x1, y1 = (int(round(v)) for v in _box(box))
    return shape_predictor(points)(rgb, dlib.rectangle(x0, y0, x1, y1))


def landmarks_68(image, box) -> np.ndarray:
    """The 68 landmarks of the face in ``box`` (dlib's ``shape_predictor_68_face_landmarks``, Kazemi & Sullivan 2014).

    Faces whose box is smaller than :data:`LANDMARK_MIN_BOX` pixels are upsampled first (bicubic) and the
    points mapped back, so low-resolution images (64 px renders) get sub-pixel positions.

    Args:
        image: see :func:`as_rgb`.
        box: ``[4]`` ``(x0, y0, x1, y1)`` pixels (a row of :func:`detect`).

    Returns:
        ``[68, 2]`` float64 ``(x, y)`` pixels of ``image`` (centres at integers), iBUG 300-W order.

    Raises:
        FaceModelsMissing: dlib or the models package is not installed.
        FaceInputError: a bad image or box.
    """
    rgb = as_rgb(image)
    box = _box(box)
    side = min(box[2] - box[0], box[3] - box[1]) + 1
    factor = max(1, math.ceil(LANDMARK_MIN_BOX / side))
    if factor > 1:
        h, w = rgb.shape[:2]
        big = np.asarray(Image.fromarray(rgb).resize((w * factor, h * factor), Image.BICUBIC))
        shape = shape_object(big, (box + 0.5) * factor - 0.5)
    else:
        shape = shape_object(rgb, box)
    points = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
    return (points + 0.5) / factor - 0.5 if factor > 1 else points


def find_faces(image, detector: str = "hog", upsample: int | None = None, landmarks: bool = True) -> list[Face]:
    """Every face of ``image`` (largest first) with its 68 landmarks: :func:`detect` then :func:`landmarks_68`."""
    rgb = as_rgb(image)
    boxes, scores = detect(rgb, detector=detector, upsample=upsample, with_scores=True)
    return [Face(b, float(s), landmarks_68(rgb, b) if landmarks else None) for b, s in zip(boxes, scores)]
