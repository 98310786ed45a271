"""Video anchors for micromotion subspaces (Wu et al., CPAL 2024, sec. 3.3 step 1, video-anchored).

Frames of one identity's video are read with imageio (a frame ``stride`` or an evenly spaced ``count``),
FFHQ-aligned from 68 landmarks (given in a file, or found by dlib: :mod:`facegen.faces`, whose
:func:`facegen.faces.align_ffhq` is the one implementation of the NVlabs ``ffhq-dataset`` recipe), or cropped
to a box / the centre square, resized to the generator's resolution and inverted into W+ with
:func:`facegen.models.stylegan2.projection.project`.
With ``warm_start`` each frame after the first starts from the previous frame's latent and needs
fewer steps (``warm_steps``).
"""
from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from facegen.editing.subspace.decomposition import MicromotionError
from facegen.faces import align_ffhq, largest_face
from facegen.faces import ffhq_quad as _ffhq_quad
from facegen.models.stylegan2.projection import project
from facegen.shapes import assert_shape
from facegen.utils import atomic_write

logger = logging.getLogger("facegen.micromotion.anchors")


def read_video(path: str | os.PathLike, count: int | None = None, stride: int | None = None, start: int = 0,
               stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a video (any format imageio/ffmpeg reads) -> ``(uint8 [T, H, W, 3], frame indices [T])``.

    ``count`` picks that many evenly spaced frames in ``[start, stop)`` (first and last included);
    else ``stride`` takes every ``stride``-th frame from ``start``; else all frames.

    Raises:
        MicromotionError: the file is missing or unreadable, or the selection is empty.
    """
    path = Path(path)
    if not path.is_file():
        raise MicromotionError(f"video {path} does not exist")
    try:
        frames = np.stack([np.asarray(f) for f in iio.imiter(path)])
    except Exception as error:  # imageio raises plugin-specific errors
        raise MicromotionError(f"{path}: cannot be read as a video ({error})") from error
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    frames = frames[..., :3]
    stop = len(frames) if stop is None else min(int(stop), len(frames))
    if count is not None:
        if count < 2 or stop - start < count:
            raise MicromotionError(f"{path}: cannot take {count} frames (>= 2) from frames {start}..{stop - 1}")
        index = np.round(np.linspace(start, stop - 1, int(count))).astype(np.int64)
    else:
        index = np.arange(start, stop, int(stride or 1), dtype=np.int64)
    if len(index) < 2:
        raise MicromotionError(f"{path}: {len(index)} frames selected (start={start}, stop={stop}, "
                               f"stride={stride}); need >= 2")
    return frames[index], index


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """FFHQ alignment square ``[4, 2]`` (corners, pixels) from 68 Multi-PIE landmarks ``[68, 2]`` (x, y).

    :func:`facegen.faces.ffhq_quad` (NVlabs ffhq-dataset ``recreate_aligned_images``: centre = eye midpoint +
    0.1 * eye-to-mouth, half side = max(2 * eye distance, 1.8 * eye-to-mouth distance)), raising MicromotionError.
    """
    return _ffhq_quad(landmarks, error=MicromotionError)


def crop_frames(frames: np.ndarray, resolution: int, box: list[float] | None = None,
                landmarks: np.ndarray | None = None) -> np.ndarray:
    """Crop and resize frames ``uint8 [T, H, W, 3]`` -> ``uint8 [T, resolution, resolution, 3]``.

    ``landmarks [T, 68, 2]``: FFHQ-aligned crop per frame (:func:`facegen.faces.align_ffhq`: the full recipe,
    with its shrink, crop and blur/reflection padding); else ``box`` ``[x0, y0, x1, y1]`` pixels for all
    frames; else the centre square (as ``load_targets``), both resized with Lanczos filtering.

    Raises:
        MicromotionError: ``landmarks`` is not ``[T, 68, 2]`` with the ``T`` of ``frames``.
    """
    if landmarks is not None:
        landmarks = np.asarray(landmarks)
        assert_shape(landmarks, [len(frames), 68, 2], "landmarks", error=MicromotionError,
                     hint="one set of 68 (x, y) pixel landmarks per frame")
    out = []
    for i, frame in enumerate(frames):
        if landmarks is not None:
            ffhq_quad(landmarks[i])                                    # checks the points (MicromotionError)
            out.append(align_ffhq(frame, landmarks[i], resolution).image)
            continue
        image = Image.fromarray(frame)
        if box is None:
            w, h = image.size
            s = min(w, h)
            box_i = ((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)
        else:
            box_i = tuple(int(round(v)) for v in box)
        out.append(np.asarray(image.crop(box_i).resize((resolution, resolution), Image.LANCZOS)))
    return np.stack(out)


def detect_frame_landmarks(frames: np.ndarray, where: str = "video") -> np.ndarray | None:
    """dlib's 68 landmarks of the largest face in each frame ``uint8 [T, H, W, 3]`` -> ``[T, 68, 2]`` pixels.

    A frame without a face takes the landmarks of the nearest frame with one (logged); None (logged) when no
    frame has a face. Raises FaceModelsMissing when dlib or its models are not installed.
    """
    found: dict[int, np.ndarray] = {}
    for i, frame in enumerate(frames):
        face, count = largest_face(frame)
        if face is not None:
            found[i] = face.landmarks
            if count > 1:
                logger.info("%s frame %d: %d faces, aligned the largest", where, i, count)
    if not found:
        logger.warning("%s: dlib found no face in the %d frames: not aligned (centre square)", where, len(frames))
        return None
    missing = [i for i in range(len(frames)) if i not in found]
    if missing:
        logger.warning("%s: no face in selected frames %s: they take the nearest frame's landmarks", where, missing)
    keys = np.array(sorted(found))
    return np.stack([found[int(keys[np.abs(keys - i).argmin()])] for i in range(len(frames))])


def frames_to_targets(frames: np.ndarray, channels: int = 3) -> Tensor:
    """``uint8 [T, H, W, 3]`` -> float targets ``[T, channels, H, W]`` in [-1, 1] (ITU-R 601 grey for 1 channel)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2) / 127.5 - 1
    if channels == 1:
        x = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    return x


@dataclass
class Anchors:
    """W+ anchors of one identity in motion order.

    w_plus: ``[N, num_ws, w_dim]``; images: reconstructions ``[N, C, H, W]``; targets: ``[N, C, H, W]``;
    frame_index: ``[N]`` frame numbers (or prompt indices); final_distance: ``[N]`` image distance;
    noise: per-anchor projection noise maps ``{name: [N, 1, h, w]}``; source: text description.
    """

    w_plus: Tensor
    images: Tensor
    targets: Tensor
    frame_index: np.ndarray
    final_distance: Tensor
    noise: dict[str, Tensor]
    source: str = ""


def invert_frames(G: nn.Module, targets: Tensor, loss_fn: nn.Module | None = None, num_steps: int = 200,
                  warm_start: bool = True, warm_steps: int = 50, seed: int = 0,
                  log: Callable[[str], None] | None = None, latent_space: str = "w_plus",
                  **schedule) -> tuple[Tensor, Tensor, Tensor, dict]:
    """Projection of consecutive frames ``targets [N, C, R, R]`` into W+ (or W, ``latent_space="w"``).

    ``warm_start=False``: all frames at once, ``num_steps`` each, from the W centre. ``warm_start=True``:
    frame 0 with ``num_steps`` from the W centre, frame ``i > 0`` with ``warm_steps`` from frame
    ``i - 1``'s latent. ``schedule`` goes to :func:`project` (``w_avg_samples``, ``optimize_noise`` ...;
    with ``optimize_noise=False`` every frame keeps the generator's ``noise_const`` maps, so changes
    between frames go into W+ only). ``latent_space="w"`` keeps each anchor on W (one w for all
    layers, returned repeated as W+): closer to the generator's training distribution.

    Returns:
        ``(w_plus [N, num_ws, w_dim], images [N, C, R, R], final distance [N], noise {name: [N, 1, h, w]})``.
    """
    if not warm_start:
        result = project(G, targets, loss_fn, latent_space=latent_space, num_steps=num_steps, seed=seed, **schedule)
        return result.w_plus, result.images, result.loss_curve[-1], result.noise
    w_plus, images, distance, noise = [], [], [], []
    previous = None
    for i in range(len(targets)):
        steps = num_steps if previous is None else warm_steps
        result = project(G, targets[i:i + 1], loss_fn, latent_space=latent_space, num_steps=steps, seed=seed + i,
                         w_init=previous, **schedule)
        previous = result.w_plus if latent_space == "w_plus" else result.w
        w_plus.append(result.w_plus)
        images.append(result.images)
        distance.append(result.loss_curve[-1])
        noise.append(result.noise)
        if log is not None:
            log(f"frame {i + 1}/{len(targets)}: {steps} steps, distance {float(result.loss_curve[-1, 0]):.4f}")
    merged = {k: torch.cat([n[k] for n in noise]) for k in noise[0]}
    return torch.cat(w_plus), torch.cat(images), torch.cat(distance), merged


def video_anchors(G: nn.Module, video: str | os.PathLike, count: int | None = 8, stride: int | None = None,
                  start: int = 0, stop: int | None = None, box: list[float] | None = None,
                  landmarks: np.ndarray | str | os.PathLike | None = None, loss_fn: nn.Module | None = None,
                  num_steps: int = 200, warm_start: bool = True, warm_steps: int = 50, seed: int = 0,
                  log: Callable[[str], None] | None = None, align: bool = True, **schedule) -> Anchors:
    """Read, crop and invert frames of ``video`` into W+ anchors (see :func:`read_video`, :func:`crop_frames`).

    Args:
        landmarks: ``[T_video, 68, 2]`` pixel landmarks of every video frame, or a ``.npz``/``.npy``
            file holding them (key ``landmarks``, as the synthetic clips' ``clip_XXXX.npz``).
        align: without ``landmarks`` and ``box``: FFHQ-align each selected frame from dlib's landmarks
            (:func:`detect_frame_landmarks`; the centre square when no frame has a face). Off: centre square.

    Raises:
        MicromotionError: unreadable video or landmarks, bad selection.
        FaceModelsMissing: ``align`` without dlib or its models installed.
    """
    frames, index = read_video(video, count=count, stride=stride, start=start, stop=stop)
    if isinstance(landmarks, (str, os.PathLike)):
        path = Path(landmarks)
        try:
            data = np.load(path)
            landmarks = data["landmarks"] if hasattr(data, "files") else data
        except (OSError, ValueError, KeyError) as error:
            raise MicromotionError(f"{path}: cannot read landmarks [T, 68, 2] (key 'landmarks') ({error})") from error
    if landmarks is not None:
        landmarks = np.asarray(landmarks)[index]
    elif box is None and align:
        landmarks = detect_frame_landmarks(frames, where=str(video))
        if landmarks is not None:
            logger.info("%s: %d frames FFHQ-aligned from dlib's 68 landmarks (video_anchors.align=true)", video,
                      len(frames))
    crops = crop_frames(frames, G.img_resolution, box=box, landmarks=landmarks)
    targets = frames_to_targets(crops, G.img_channels)
    w_plus, images, distance, noise = invert_frames(G, targets, loss_fn, num_steps=num_steps, warm_start=warm_start,
                                                    warm_steps=warm_steps, seed=seed, log=log, **schedule)
    return Anchors(w_plus=w_plus, images=images, targets=targets, frame_index=index, final_distance=distance,
                   noise=noise, source=f"video {video} frames {index.tolist()}")


def save_anchors(path: str | os.PathLike, anchors: Anchors) -> Path:
    """``.npz`` with ``w_plus [N, num_ws, w_dim]``, ``frame_index [N]``, ``final_distance [N]``, ``source`` (atomic)."""
    buffer = io.BytesIO()
    np.savez(buffer, w_plus=anchors.w_plus.cpu().numpy().astype(np.float32), frame_index=anchors.frame_index,
             final_distance=anchors.final_distance.cpu().numpy(), source=np.array(anchors.source))
    atomic_write(path, buffer.getvalue())
    return Path(path)


def load_anchors_w_plus(path: str | os.PathLike) -> np.ndarray:
    """``w_plus [N, num_ws, w_dim]`` of an anchors file of :func:`save_anchors` (or any .npz with ``w_plus``).

    Raises:
        MicromotionError: unreadable file or no ``w_plus [N, num_ws, w_dim]``.
    """
    try:
        with np.load(path) as data:
            w_plus = data["w_plus"]
    except (OSError, ValueError, KeyError) as error:
        raise MicromotionError(f"{path}: no readable 'w_plus' array ({error})") from error
    assert_shape(w_plus, ["N", "num_ws", "w_dim"], f"{path}: w_plus", error=MicromotionError)
    return w_plus
