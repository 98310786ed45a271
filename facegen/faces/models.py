"""dlib and its pretrained face models, loaded once from the installed packages' own files (never downloaded).

Two packages from the package registry provide everything (both are dependencies of facegen):

- ``dlib-bin``: a prebuilt wheel of dlib (King 2009, "Dlib-ml: A Machine Learning Toolkit", JMLR 10);
- ``face-recognition-models`` (Adam Geitgey): dlib's model files as package data:
  ``shape_predictor_68_face_landmarks.dat`` (Kazemi & Sullivan 2014, "One millisecond face alignment with an
  ensemble of regression trees", trained on iBUG 300-W: non-commercial use only),
  ``shape_predictor_5_face_landmarks.dat``, ``mmod_human_face_detector.dat`` (King 2015, max-margin object
  detection CNN) and ``dlib_face_recognition_resnet_model_v1.dat`` (a reduced ResNet-34 giving 128-D face
  descriptors, 99.38% on LFW; dlib's convention: two descriptors closer than 0.6 belong to the same person).
  Davis King released the files into the public domain (dlib-models); the 68-point model's training set
  (iBUG 300-W) excludes commercial use, and its creators ask that the model not be used in commercial products.

The model files are located through the package's import spec, without importing it: its ``__init__`` calls
``pkg_resources``, which setuptools >= 81 no longer ships. Each loader raises :class:`FaceModelsMissing`
(one sentence naming what to install) when dlib or the models package is missing.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from facegen.errors import FacegenError

INSTALL = "pip install dlib-bin face-recognition-models"
MODEL_FILES = {
    "landmarks_68": "shape_predictor_68_face_landmarks.dat",
    "landmarks_5": "shape_predictor_5_face_landmarks.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
}
"""Model name -> file of the ``face-recognition-models`` package (``face_recognition_models/models/``)."""


class FaceModelsMissing(FacegenError, ImportError):
    """dlib or the ``face-recognition-models`` package (its pretrained files) is not installed."""


class FaceInputError(FacegenError, ValueError):
    """An image, box or landmark array handed to :mod:`facegen.faces` has the wrong shape, dtype or value."""


class NoFaceError(FaceInputError):
    """dlib's detector found no face in an image that needs one."""


def dlib_module():
    """The imported ``dlib`` module.

    Raises:
        FaceModelsMissing: dlib is not installed.
    """
    try:
        import dlib  # optional: dlib-bin (a facegen dependency; real-face detection, landmarks, descriptors)
    except ImportError as error:
        raise FaceModelsMissing(f"facegen.faces needs dlib, which is not installed: run `{INSTALL}`.") from error
    return dlib


def model_path(name: str) -> Path:
    """Path of the model file ``name`` (a key of :data:`MODEL_FILES`) inside the installed models package.

    Raises:
        FaceModelsMissing: ``face-recognition-models`` is not installed, or lacks the file.
        KeyError: an unknown model name.
    """
    filename = MODEL_FILES[name]
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "models" / filename
        if path.is_file():
            return path
    where = f" (looked in {', '.join(folders)})" if folders else ""
    raise FaceModelsMissing(f"facegen.faces needs dlib's pretrained {filename} from the face-recognition-models "
                            f"package, which is not installed{where}: run `{INSTALL}`.")


@lru_cache(maxsize=1)
def frontal_detector():
    """dlib's HOG + linear SVM frontal face detector (``dlib.get_frontal_face_detector()``), built once."""
    return dlib_module().get_frontal_face_detector()


@lru_cache(maxsize=1)
def cnn_detector():
    """dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``), loaded once."""
    dlib = dlib_module()
    return dlib.cnn_face_detection_model_v1(str(model_path("cnn_detector")))


@lru_cache(maxsize=2)
def shape_predictor(points: int = 68):
    """dlib's landmark predictor with ``points`` = 68 (iBUG 300-W order) or 5, loaded once."""
    dlib = dlib_module()
    return dlib.shape_predictor(str(model_path(f"landmarks_{points}")))


@lru_cache(maxsize=1)
def face_recognizer():
    """dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``), loaded once."""
    dlib = dlib_module()
    return dlib.face_recognition_model_v1(str(model_path("recognition")))


def clear_caches() -> None:
    """Forget the loaded models (tests that simulate a missing package call this)."""
    for loader in (frontal_detector, cnn_detector, shape_predictor, face_recognizer):
        loader.cache_clear()


def available() -> bool:
    """True when dlib and every model file can be loaded (nothing is loaded)."""
    try:
        dlib_module()
        for name in MODEL_FILES:
            model_path(name)
    except FaceModelsMissing:
        return False
    return True
