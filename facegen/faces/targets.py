"""Photos prepared for projection into a generator: FFHQ-aligned when a face is found, as StyleGAN inputs are.

:func:`prepare_photos` is what ``facegen.project`` and ``facegen.micromotion`` do to real target photos (``align:
true``, the default): the largest face dlib finds is FFHQ-aligned at the generator's resolution
(:func:`facegen.faces.align_image`). Images that facegen's own generator wrote (``facegen.generate`` tags its PNGs
``Software: facegen.generate``) are never aligned; a photo without a face is used as its centre square
(``no_face="centre"``, noted) or refused (``no_face="error"``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from facegen.faces.models import FaceInputError, NoFaceError
from facegen.faces.pipeline import align_image

GENERATOR_TAG = ("Software", "facegen.generate")
"""The PNG text chunk ``facegen.generate`` writes into its images: such images are never aligned."""


def generator_made(path: str | os.PathLike) -> str | None:
    """The PNG ``Software`` text of ``path`` when it names a facegen generator (``facegen.generate``), else None."""
    try:
        with Image.open(path) as image:
            software = str(image.info.get(GENERATOR_TAG[0], ""))
    except (OSError, UnidentifiedImageError):
        return None
    return software if software.startswith("facegen") else None


@dataclass
class PreparedPhoto:
    """One target photo: ``picture`` uint8 ``[R, R, 3]``; ``aligned`` (FFHQ crop) or the centre square;
    ``landmarks`` ``[68, 2]`` in the picture's pixels when aligned; ``note`` one line for the log."""

    path: Path
    picture: np.ndarray
    aligned: bool
    note: str
    landmarks: np.ndarray | None = None


def centre_square(image: Image.Image, resolution: int) -> np.ndarray:
    """The centre square of ``image`` resized to ``resolution`` (Lanczos), uint8 ``[R, R, 3]`` (as ``load_targets``)."""
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    return np.asarray(image.convert("RGB").resize((resolution, resolution), Image.LANCZOS))


def prepare_photos(paths, resolution: int, align: bool = True, no_face: str = "centre",
                   detector: str = "hog") -> list[PreparedPhoto]:
    """Target photos at ``resolution``: FFHQ-aligned (``align``) unless generator-made or without a face.

    Raises:
        FaceInputError: an unreadable file or a bad ``no_face``. NoFaceError: no face and ``no_face="error"``.
        FaceModelsMissing: ``align`` without dlib or its models installed.
    """
    if no_face not in ("centre", "error"):
        raise FaceInputError(f"align_no_face={no_face!r}: expected centre or error")
    prepared = []
    for path in map(Path, paths):
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except (OSError, UnidentifiedImageError) as error:
            raise FaceInputError(f"{path}: cannot be read as an image ({error})") from error
        if not align:
            prepared.append(PreparedPhoto(path, centre_square(image, resolution), False, f"{path.name}: not aligned "
                                          "(align=false): centre square"))
            continue
        tag = generator_made(path)
        if tag is not None:
            prepared.append(PreparedPhoto(path, centre_square(image, resolution), False,
                                          f"{path.name}: generator-made (PNG Software={tag}): not aligned"))
            continue
        aligned, face, count = align_image(np.asarray(image), resolution, detector=detector)
        if aligned is None:
            if no_face == "error":
                raise NoFaceError(f"{path}: dlib found no face to align (align_no_face=centre uses the centre square, "
                                  "align=false never aligns)")
            prepared.append(PreparedPhoto(path, centre_square(image, resolution), False,
                                          f"{path.name}: dlib found no face: not aligned, centre square"))
            continue
        several = f", the largest of {count} faces" if count > 1 else ""
        box = [int(round(v)) for v in face.box]
        prepared.append(PreparedPhoto(path, aligned.image, True, f"{path.name}: FFHQ-aligned at {resolution} px "
                                      f"(dlib face box {box}{several})", aligned.landmarks))
    return prepared


def to_targets(photos: list[PreparedPhoto], channels: int) -> torch.Tensor:
    """``[B, channels, R, R]`` float in [-1, 1] of prepared photos (greyscale: PIL ``L``, ITU-R 601 luma)."""
    pictures = [p.picture if channels == 3 else np.asarray(Image.fromarray(p.picture).convert("L"))[..., None]
                for p in photos]
    x = torch.from_numpy(np.stack(pictures).astype(np.float32)).permute(0, 3, 1, 2)
    return x / 127.5 - 1
