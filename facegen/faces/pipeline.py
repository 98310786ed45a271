"""Photo or video in, largest face out: detection + 68 landmarks (+ FFHQ alignment) per image or video frame."""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from facegen.faces.alignment import AlignedFace, align_ffhq
from facegen.faces.detection import Face, as_rgb, detect, landmarks_68
from facegen.faces.models import FaceInputError

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
"""Suffixes read as videos (every frame, or every ``stride``-th); ``.gif`` counts as an image."""


def is_video(path: str | os.PathLike) -> bool:
    """True when ``path``'s suffix is one of :data:`VIDEO_EXTENSIONS`."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def read_frames(path: str | os.PathLike, stride: int = 1, max_frames: int | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame index, uint8 [H, W, 3])`` for every ``stride``-th frame of a video (imageio / ffmpeg), at most
    ``max_frames`` of them.

    Raises:
        FaceInputError: the file is missing or cannot be read as a video.
    """
    path = Path(path)
    if not path.is_file():
        raise FaceInputError(f"video {path} does not exist")
    stride = max(1, int(stride))
    taken = 0
    try:
        for index, frame in enumerate(iio.imiter(path)):
            if index % stride:
                continue
            if max_frames is not None and taken >= max_frames:
                break
            taken += 1
            yield index, as_rgb(np.asarray(frame)[..., :3] if np.ndim(frame) == 3 else np.asarray(frame))
    except (OSError, ValueError, RuntimeError) as error:
        raise FaceInputError(f"{path}: cannot be read as a video ({error})") from error


def largest_face(image, detector: str = "hog", upsample: int | None = None) -> tuple[Face | None, int]:
    """``(the largest face with its 68 landmarks or None, number of faces found)`` in ``image``."""
    rgb = as_rgb(image)
    boxes, scores = detect(rgb, detector=detector, upsample=upsample, with_scores=True)
    if not len(boxes):
        return None, 0
    return Face(boxes[0], float(scores[0]), landmarks_68(rgb, boxes[0])), len(boxes)


def align_image(image, resolution: int, detector: str = "hog", upsample: int | None = None,
                transform_size: int | None = None, enable_padding: bool = True
                ) -> tuple[AlignedFace | None, Face | None, int]:
    """FFHQ-aligned crop of the largest face: ``(AlignedFace or None, Face or None, number of faces found)``."""
    rgb = as_rgb(image)
    face, count = largest_face(rgb, detector=detector, upsample=upsample)
    if face is None:
        return None, None, 0
    aligned = align_ffhq(rgb, face.landmarks, resolution, transform_size=transform_size, enable_padding=enable_padding)
    return aligned, face, count


@dataclass
class VideoLandmarks:
    """68 landmarks per video frame where a face was found.

    Attributes:
        landmarks: ``[T, 68, 2]`` float32 pixels of the video frames (largest face per frame).
        frames: ``[T]`` int64 frame indices of those frames.
        missing: indices of the frames read in which no face was found (left out of ``landmarks``).
        size: ``(W, H)`` of the frames.
        several: indices of frames with more than one face (the largest was kept).
        source: the video's path.
    """

    landmarks: np.ndarray
    frames: np.ndarray
    missing: list[int] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    several: list[int] = field(default_factory=list)
    source: str = ""


def video_landmarks(path: str | os.PathLike, stride: int = 1, max_frames: int | None = None,
                    detector: str = "hog", upsample: int | None = None) -> VideoLandmarks:
    """Largest face's 68 landmarks (iBUG order, pixels) in every ``stride``-th frame of a video (~0.05-0.5 s per
    frame on one CPU core, by frame size).

    Raises:
        FaceInputError: unreadable video, or no face in any frame read.
        FaceModelsMissing: dlib or the models package is not installed.
    """
    points, frames, missing, several, size = [], [], [], [], (0, 0)
    for index, frame in read_frames(path, stride=stride, max_frames=max_frames):
        size = (frame.shape[1], frame.shape[0])
        face, count = largest_face(frame, detector=detector, upsample=upsample)
        if face is None:
            missing.append(index)
            continue
        if count > 1:
            several.append(index)
        points.append(face.landmarks)
        frames.append(index)
    if not points:
        raise FaceInputError(f"{path}: no face found in any of the {len(missing)} frames read (stride {stride})")
    return VideoLandmarks(np.asarray(points, np.float32), np.asarray(frames, np.int64), missing, size, several,
                          str(path))
