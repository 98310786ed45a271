"""Images as arrays and files, the one place for it: [-1, 1] tensors -> uint8, grids, PNG and video files.

Generators, projection, editing, callbacks, recipes and entry points all picture images through these
functions. Conventions: generator images are ``[B, C, H, W]`` float in about [-1, 1] (C = 1 or 3), mapped
to pixels as NVlabs does (``(x + 1) * 127.5``, rounded and clamped); pictures are ``uint8 [H, W, 3]`` (or
``[H, W]`` for greyscale). Every file is written atomically (:func:`facegen.utils.atomic_write`).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image, PngImagePlugin

from facegen.errors import DatasetLayoutError, FacegenError
from facegen.shapes import assert_shape
from facegen.utils import atomic_write

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pbm", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = (".mp4", ".gif")


class ImagingError(FacegenError, ValueError):
    """An image array has the wrong shape or dtype, or a file suffix is not one this module writes."""


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[B, C, H, W]`` in [-1, 1] -> ``uint8 [B, H, W, C]`` (NVlabs: ``(x + 1) * 127.5``, rounded, clamped).

    Raises:
        ImagingError: ``images`` is not 4-D.
    """
    assert_shape(images, ["B", "C", "H", "W"], "images", error=ImagingError)
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def tile(pictures: np.ndarray, cols: int) -> np.ndarray:
    """Tile ``uint8 [N, H, W, C]`` pictures row by row into ``[rows*H, cols*W, C]`` (blank cells black).

    ``C = 1`` gives a 2-D ``[rows*H, cols*W]`` greyscale grid.

    Raises:
        ImagingError: ``pictures`` is not 4-D.
    """
    assert_shape(pictures, ["N", "H", "W", "C"], "pictures", error=ImagingError)
    n, h, w, c = pictures.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    for i, picture in enumerate(pictures):
        r, k = divmod(i, cols)
        grid[r * h:(r + 1) * h, k * w:(k + 1) * w] = picture
    return grid[..., 0] if c == 1 else grid


def images_to_grid(images: torch.Tensor, cols: int) -> np.ndarray:
    """``[N, C, H, W]`` in [-1, 1] -> uint8 grid ``[rows*H, cols*W, 3]`` (``[rows*H, cols*W]`` for C = 1)."""
    return tile(to_uint8(images), cols)


def encode_png(picture: np.ndarray, compress_level: int = 6, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes of a ``uint8 [H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` picture (PIL; level 1 is fast).

    ``text``: PNG text chunks (``{"Software": "facegen.generate"}`` marks generator-made images, which
    :func:`facegen.faces.prepare_photos` never aligns).

    Raises:
        ImagingError: ``picture`` is not uint8, or not ``[H, W]`` / ``[H, W, C]``.
    """
    picture = np.asarray(picture)
    assert_shape(picture, ["H", "W"] if picture.ndim == 2 else ["H", "W", "C"], "picture", error=ImagingError,
                 hint="or [H, W] (grey)")
    if picture.dtype != np.uint8:
        raise ImagingError(f"picture: expected dtype uint8, got {picture.dtype}")
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(str(key), str(value))
    buffer = io.BytesIO()
    Image.fromarray(picture[..., 0] if picture.ndim == 3 and picture.shape[-1] == 1 else picture).save(
        buffer, format="PNG", compress_level=compress_level, pnginfo=info)
    return buffer.getvalue()


def write_png(path: str | os.PathLike, picture: np.ndarray, text: dict[str, str] | None = None) -> Path:
    """Write ``picture`` (see :func:`encode_png`, ``text`` chunks) as a PNG file, atomically; returns the path."""
    path = Path(path)
    atomic_write(path, encode_png(picture, text=text))
    return path


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 8) -> Path:
    """Write ``uint8 [T, H, W, 3]`` frames as ``.mp4`` (ffmpeg, H.264) or a looping ``.gif``, atomically.

    Raises:
        ImagingError: another suffix, or ``frames`` not ``[T, H, W, 3]``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ImagingError(f"{path}: video suffix must be one of {VIDEO_SUFFIXES}")
    frames = np.asarray(frames)
    assert_shape(frames, ["T", "H", "W", 3], "frames", error=ImagingError, hint="uint8 RGB frames (to_frames)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{suffix}")
    try:
        if suffix == ".mp4":
            iio.imwrite(tmp, list(frames), fps=fps, macro_block_size=1, codec="libx264", plugin="FFMPEG")
        else:
            iio.imwrite(tmp, list(frames), duration=1000 / fps, loop=0, extension=".gif")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def list_images(path: str | os.PathLike) -> list[Path]:
    """``path`` itself when it is a file, else the image files directly inside the folder, sorted by name.

    Raises:
        DatasetLayoutError: the path does not exist, or the folder holds no image file.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) if path.is_dir() else []
    if not files:
        raise DatasetLayoutError(f"{path}: no image file or folder of images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files
