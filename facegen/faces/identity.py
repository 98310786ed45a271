"""Identity of real faces: dlib's 128-D face descriptor and its Euclidean distance.

dlib's ``dlib_face_recognition_resnet_model_v1`` (a reduced ResNet-34 trained on about 3 million faces; 99.38% on
the LFW benchmark) maps an aligned 150x150 face chip to a 128-D descriptor. dlib's convention: two descriptors
less than 0.6 apart are the same person (the threshold of dlib's ``dnn_face_recognition_ex.cpp`` and of
``face_recognition.compare_faces``). Same-person pairs are typically 0.3-0.5 apart, different people 0.7-1.0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from facegen.faces.detection import as_rgb, detect, landmarks_68
from facegen.faces.models import (
    FaceInputError,
    NoFaceError,
    dlib_module,
    face_recognizer,
)
from facegen.imaging import to_uint8
from facegen.shapes import assert_shape

SAME_PERSON = 0.6
"""dlib's threshold: identity distance below it = the same person."""
EMBED_MIN_SIDE = 150
"""Images with a shorter side below this (pixels) are upsampled (bicubic, integer factor) before the
descriptor: dlib cuts a 150x150 chip, and interpolating a 64 px render inside dlib loses more."""


def _shape_from_landmarks(landmarks: np.ndarray):
    dlib = dlib_module()
    x0, y0 = np.floor(landmarks.min(0)).astype(int)
    x1, y1 = np.ceil(landmarks.max(0)).astype(int)
    points = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
    return dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), points)


def identity_embedding(image, face=None, num_jitters: int = 0) -> np.ndarray:
    """dlib's 128-D face descriptor of one face in ``image``.

    Args:
        image: the photo (see :func:`facegen.faces.detection.as_rgb`).
        face: ``[68, 2]`` landmarks (pixels, iBUG order: used as they are), a ``[4]`` box ``(x0, y0, x1, y1)``
            (the 68 landmarks are predicted in it), or None (the largest face :func:`detect` finds).
        num_jitters: dlib's ``num_jitters`` (descriptors of randomly jittered chips averaged; 0 = one chip).

    Returns:
        ``[128]`` float64 descriptor (unit scale: compare with :func:`identity_distance`).

    Raises:
        NoFaceError: ``face`` is None and no face is found.
        FaceModelsMissing: dlib or the models package is not installed.
        FaceInputError: a bad image, box or landmark array.
    """
    rgb = as_rgb(image)
    if face is None:
        boxes = detect(rgb)
        if not len(boxes):
            raise NoFaceError(f"no face found in the image ({rgb.shape[1]}x{rgb.shape[0]} px)")
        face = boxes[0]
    face = np.asarray(face, np.float64)
    if face.shape == (4,):
        face = landmarks_68(rgb, face)
    assert_shape(face, [68, 2], "face", error=FaceInputError, hint="[68, 2] landmarks or a [4] box, pixels")
    factor = max(1, math.ceil(EMBED_MIN_SIDE / min(rgb.shape[:2])))
    if factor > 1:
        h, w = rgb.shape[:2]
        rgb = np.asarray(Image.fromarray(rgb).resize((w * factor, h * factor), Image.BICUBIC))
        face = (face + 0.5) * factor - 0.5
    shape = _shape_from_landmarks(face)
    return np.asarray(face_recognizer().compute_face_descriptor(rgb, shape, int(num_jitters)), np.float64)


def identity_distance(a, b) -> float | np.ndarray:
    """Euclidean distance of descriptors ``a, b`` (``[128]`` or ``[N, 128]``, broadcast); < 0.6 = same person.

    Raises:
        FaceInputError: last dimension not 128.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape[-1:] != (128,) or b.shape[-1:] != (128,):
        raise FaceInputError(f"identity descriptors: expected shape [..., 128], got {list(a.shape)} and {list(b.shape)}")
    d = np.linalg.norm(a - b, axis=-1)
    return float(d) if d.ndim == 0 else d


def _pictures(images) -> list[np.ndarray]:
    if isinstance(images, torch.Tensor):
        return list(to_uint8(images))
    return [as_rgb(image) for image in images]


def try_embedding(image) -> np.ndarray | None:
    """:func:`identity_embedding` of the largest face, or None when no face is found."""
    try:
        return identity_embedding(image)
    except NoFaceError:
        return None


@dataclass
class IdentityComparison:
    """Paired identity distances: ``distances [N]`` (NaN where either image has no detected face),
    ``no_face`` = how many pairs that is, ``n`` = pairs compared."""

    distances: np.ndarray
    no_face: int
    n: int

    @property
    def mean(self) -> float:
        """Mean over the pairs with faces; NaN when there is none (never a made-up number)."""
        found = self.distances[np.isfinite(self.distances)]
        return float(found.mean()) if found.size else float("nan")

    @property
    def same_person_rate(self) -> float:
        """Fraction of the pairs with faces below :data:`SAME_PERSON`; NaN when there is none."""
        found = self.distances[np.isfinite(self.distances)]
        return float((found < SAME_PERSON).mean()) if found.size else float("nan")


def paired_identity_distances(images_a, images_b) -> IdentityComparison:
    """dlib identity distance between ``images_a[i]`` and ``images_b[i]`` (source and edited image).

    Args:
        images_a, images_b: ``[N, C, H, W]`` tensors in [-1, 1] (generator images; C = 1 or 3) or sequences
            of uint8 pictures; the largest face of each is used.

    Returns:
        :class:`IdentityComparison` (NaN where dlib finds no face in either image of a pair, and their count).

    Raises:
        FaceModelsMissing: dlib or the models package is not installed.
        FaceInputError: different numbers of images.
    """
    a, b = _pictures(images_a), _pictures(images_b)
    if len(a) != len(b):
        raise FaceInputError(f"paired identity distances: {len(a)} images vs {len(b)}")
    distances = np.full(len(a), np.nan)
    for i, (x, y) in enumerate(zip(a, b)):
        ex = try_embedding(x)
        ey = try_embedding(y) if ex is not None else None
        if ex is not None and ey is not None:
            distances[i] = identity_distance(ex, ey)
    return IdentityComparison(distances=distances, no_face=int(np.isnan(distances).sum()), n=len(a))
