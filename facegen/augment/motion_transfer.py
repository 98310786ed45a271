"""Motion-transfer augmentation: animate still faces with driving keypoint motion and thin-plate-spline warps.

Igaue et al. 2025 (arXiv 2511.16711) animate few, expression-poor macaque photos with a thin-plate-spline
motion model driven by computer-graphics animations, and train StyleGAN2 on stills + frames. facegen does the
keypoint-driven part of that explicitly, with no learned motion network:

1. keypoints of each still (:mod:`facegen.data.keypoints`: a landmarks file, or the mean template);
2. driving displacements from a neutral frame (:mod:`facegen.augment.driving`: the procedural 3D face
   animated through named expressions, or a landmark-annotated video);
3. :func:`facegen.augment.retarget.retarget`: the displacements are carried into the still's frame by the similarity transform
   between the driving neutral and the still (Umeyama 1991), i.e. normalised by face size and in-plane
   rotation, then rescaled per region (eyes, brows, mouth, ...) by the ratio of region sizes;
4. :func:`facegen.augment.tps.tps_warp`: a thin-plate spline (Bookstein 1989) through the keypoints (plus fixed image-border
   anchors) maps each still onto the driven keypoints (kornia ``get_tps_transform`` / ``warp_image_tps``);
5. :func:`augment_dataset`: originals + ``frames_per_still`` warped frames per still into an NVlabs zip
   readable by :class:`facegen.data.images.ImageDataModule`, the keypoints after the warp
   (``landmarks.json``) and a preview grid.
"""
from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegen.augment.driving import (
    DrivingMotion,
    faceworld_driving,
    video_driving,
)
from facegen.augment.retarget import retarget
from facegen.augment.tps import separate_points, tps_warp
from facegen.data.images import IMAGE_EXTENSIONS, ImageDataModule, ImageSource
from facegen.data.keypoints import (
    DEFAULT_TEMPLATE_BOX,
    KeypointFileError,
    Keypoints,
    default_regions,
    load_keypoints,
    mean_template,
)
from facegen.data.synthetic import image_grid
from facegen.errors import DatasetLayoutError
from facegen.imaging import encode_png
from facegen.utils import atomic_write

log = logging.getLogger(__name__)

@dataclass
class AugmentResult:
    """What :func:`augment_dataset` wrote."""

    zip_path: Path
    landmarks_path: Path
    preview_path: Path
    n_images: int
    n_stills: int = 0
    frames_per_still: int = 0
    seconds: float = 0.0
    summary_path: Path | None = None

    @property
    def seconds_per_still(self) -> float:
        return self.seconds / max(self.n_stills, 1)


def _output_stems(names: list[str]) -> list[str]:
    """Zip member stems: the relative name without an image extension (kept when stems would collide)."""
    stems = []
    for name in names:
        suffix = Path(name).suffix
        stems.append(name[: -len(suffix)] if suffix.lower() in IMAGE_EXTENSIONS else name)
    counts = {s: stems.count(s) for s in stems}
    return [name.replace(".", "_") if counts[s] > 1 else s for s, name in zip(stems, names)]


def _source_labels(source: ImageSource) -> dict | None:
    meta = next((n for n in source.names() if Path(n).name == "dataset.json"), None)
    if meta is None:
        return None
    labels = json.loads(source.read(meta)).get("labels")
    return {str(n): v for n, v in labels} if labels else None


def _driving_motion(driving, expressions, seed: int, driving_frames: int, driving_stride: int = 1) -> DrivingMotion:
    if isinstance(driving, DrivingMotion):
        return driving
    if driving == "faceworld":
        return faceworld_driving(expressions, driving_frames, seed=seed)
    path = Path(str(driving)).expanduser()
    if path.exists():
        return video_driving(path, stride=driving_stride)
    raise KeypointFileError(f"driving={driving!r}: expected 'faceworld', a DrivingMotion, a landmarks file "
                            "(.npz/.npy/.csv/.json) of a video or a video (.mp4 ...); the file does not exist")


def displacement_summary(motion: DrivingMotion) -> dict:
    """Driving keypoint displacement from the neutral frame (driving pixels): ``mean``, ``p95``, ``max`` over
    frames and points, and the mean per region (``regions``)."""
    d = np.linalg.norm(motion.displacements, axis=-1)                                 # [T, K]
    regions = {name: float(d[:, idx].mean()) for name, idx in motion.regions.items() if len(idx)}
    return {"mean": float(d.mean()), "p95": float(np.percentile(d, 95)), "max": float(d.max()), "regions": regions,
            "frames": motion.num_frames}


def _to_crop(points: np.ndarray, size: tuple[int, int], resolution: int) -> np.ndarray:
    """Original-image pixels -> pixels after ImageDataModule's centre crop to a square and resize."""
    w, h = size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    scale = resolution / side
    return ((points - np.array([left, top]) + 0.5) * scale - 0.5).astype(np.float32)


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image, 3, -1) if image.shape[-1] == 1 else image


def draw_points(image: np.ndarray, points: np.ndarray, colour=(255, 0, 0)) -> np.ndarray:
    """Copy of ``image [H, W, 3]`` uint8 with a pixel set at each ``(u, v)`` of ``points [K, 2]``."""
    out = image.copy()
    h, w = out.shape[:2]
    for u, v in np.rint(points).astype(int):
        if 0 <= u < w and 0 <= v < h:
            out[v, u] = colour
    return out


def augment_dataset(root: str | Path, out: str | Path, *, resolution: int, channels: int, frames_per_still: int = 8,
                    landmarks=None, driving="faceworld", expressions: Sequence[str] | None = None, seed: int = 0,
                    template_box: Sequence[float] = DEFAULT_TEMPLATE_BOX, landmarks_space: str = "auto",
                    missing: str = "error", driving_frames: int = 4, gain: float = 1.0, min_separation: float = 1.0,
                    batch_size: int = 16, preview_stills: int = 8, driving_stride: int = 1) -> AugmentResult:
    """Animate every still of an image dataset into ``frames_per_still`` expression frames.

    Args:
        root: an image folder or NVlabs zip, as read by :class:`facegen.data.images.ImageDataModule`.
        out: output folder (created): ``dataset.zip`` (NVlabs zip: each original as ``<stem>.png`` and its
            frames as ``<stem>_mtNN.png``, ``dataset.json`` carrying the originals' labels to their frames,
            or ``{"labels": null}``), ``landmarks.json`` (:meth:`Keypoints.save_json`: per zip member the
            ``[K, 2]`` keypoints after the warp, at ``resolution``), ``preview.png`` (one row per still: the
            still, then its frames), ``preview_landmarks.png`` (the same with the keypoints drawn),
            ``augment.json`` (settings, driving source, timing).
        resolution, channels: image size (square) and 1 (L) or 3 (RGB), as the datamodule decodes them.
        frames_per_still: warped frames per still (drawn without repetition from the driving frames, seeded
            per still).
        landmarks: None (the :func:`mean_template` in ``template_box``), a CSV/JSON path, or :class:`Keypoints`.
        landmarks_space: ``"original"`` (file coordinates in the original image; the centre crop and resize
            are applied), ``"resized"`` (already at ``resolution``), ``"auto"`` (templates: resized, files: original).
        missing: an image without keypoints: ``"error"`` (raise), ``"template"`` (use the mean template) or
            ``"skip"`` (keep the original, make no frames).
        driving: ``"faceworld"`` (:func:`faceworld_driving` with ``expressions`` and ``driving_frames``
            per expression), a landmarks file of a video or a video itself (:func:`video_driving`; dlib's
            landmarks per frame), or a :class:`DrivingMotion`.
        gain: expression strength multiplier in :func:`retarget`; min_separation: see :func:`separate_points`.
        driving_stride: a driving video or landmarks file: keep every ``driving_stride``-th frame.

    Returns:
        :class:`AugmentResult`.

    Raises:
        DatasetLayoutError: ``root`` missing / without images, bad ``frames_per_still``.
        KeypointFileError: unreadable landmarks, images without keypoints (``missing="error"``), bad driving.
    """
    start = time.perf_counter()
    if frames_per_still < 0:
        raise DatasetLayoutError(f"frames_per_still must be >= 0, got {frames_per_still}")
    if missing not in ("error", "template", "skip"):
        raise KeypointFileError(f"missing={missing!r}; expected 'error', 'template' or 'skip'")
    dm = ImageDataModule(root, resolution=resolution, channels=channels)
    dm.setup("fit")
    dataset = dm.train_set
    source = dataset.source
    names = [r.name for r in dataset.records]
    template = mean_template(resolution, template_box)
    if landmarks is None:
        keypoints = template
    elif isinstance(landmarks, Keypoints):
        keypoints = landmarks
    else:
        keypoints = load_keypoints(landmarks)
    if landmarks_space == "auto":
        landmarks_space = "resized" if (keypoints.default is not None and not keypoints.points) else "original"
    if landmarks_space not in ("original", "resized"):
        raise KeypointFileError(f"landmarks_space={landmarks_space!r}; expected 'original', 'resized' or 'auto'")
    absent = [n for n in names if n not in keypoints]
    if absent and missing == "error":
        raise KeypointFileError(f"{keypoints.source}: no keypoints for {len(absent)} of {len(names)} images under "
                                f"{root} (e.g. {absent[:3]}); names must match the image names or their base names "
                                "(or pass missing='template' / 'skip')")
    motion = _driving_motion(driving, expressions, seed, driving_frames, driving_stride)
    labels = _source_labels(source)
    stems = _output_stems(names)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    landmarks_out: dict[str, np.ndarray] = {}
    json_labels = []
    preview_rows, preview_marks = [], []
    tmp = out / ".dataset.zip.tmp"
    n_images = 0

    def still_keypoints(index: int) -> tuple[np.ndarray | None, dict]:
        name = names[index]
        found = keypoints.lookup(name)
        regions = keypoints.regions
        if found is None:
            if missing == "skip":
                return None, regions
            found, regions = template.default, template.regions
        elif landmarks_space == "original" and found is not keypoints.default:
            with Image.open(io.BytesIO(source.read(name))) as im:
                found = _to_crop(found, im.size, resolution)
        return found, regions

    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for first in range(0, len(names), batch_size):
            batch = list(range(first, min(first + batch_size, len(names))))
            stills = [dataset.load(i) for i in batch]                                    # uint8 [H, W, C]
            src_list, dst_list, owner = [], [], []
            for slot, i in enumerate(batch):
                kp, regions = still_keypoints(i)
                archive.writestr(f"{stems[i]}.png", encode_png(stills[slot], compress_level=1))
                n_images += 1
                if labels is not None:
                    json_labels.append([f"{stems[i]}.png", labels.get(names[i])])
                if kp is not None:
                    landmarks_out[f"{stems[i]}.png"] = kp
                if kp is None or frames_per_still == 0:
                    continue
                rng = np.random.default_rng([seed, i])
                chosen = rng.choice(motion.num_frames, frames_per_still, replace=motion.num_frames < frames_per_still)
                driven = retarget(motion, kp, regions, frames=chosen, gain=gain)         # [F, K, 2]
                driven = separate_points(kp[None], driven, min_separation)   # as tps_warp will
                src_list.append(np.repeat(kp[None], frames_per_still, 0))
                dst_list.append(driven)
                owner.extend((slot, f) for f in range(frames_per_still))
            if not owner:
                continue
            images = torch.stack([torch.from_numpy(stills[slot].copy()).permute(2, 0, 1).float() for slot, _ in owner])
            warped = tps_warp(images, torch.from_numpy(np.concatenate(src_list)),
                              torch.from_numpy(np.concatenate(dst_list)), min_separation=min_separation)
            frames = warped.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            dst_all = np.concatenate(dst_list)
            per_slot: dict[int, list[int]] = {}
            for j, (slot, f) in enumerate(owner):
                i = batch[slot]
                member = f"{stems[i]}_mt{f:02d}.png"
                archive.writestr(member, encode_png(frames[j], compress_level=1))
                n_images += 1
                landmarks_out[member] = dst_all[j]
                if labels is not None:
                    json_labels.append([member, labels.get(names[i])])
                per_slot.setdefault(slot, []).append(j)
            for slot, js in per_slot.items():
                if len(preview_rows) >= preview_stills:
                    break
                still = _rgb(stills[slot])
                kp0 = landmarks_out[f"{stems[batch[slot]]}.png"]
                preview_rows.append([still] + [_rgb(frames[j]) for j in js])
                preview_marks.append([draw_points(still, kp0)] + [draw_points(_rgb(frames[j]), dst_all[j]) for j in js])
        archive.writestr("dataset.json", json.dumps({"labels": json_labels if labels is not None else None}))
    tmp.replace(out / "dataset.zip")

    k = next(iter(landmarks_out.values())).shape[0] if landmarks_out else keypoints.num_points
    regions = keypoints.regions if keypoints.num_points == k else default_regions(k)
    Keypoints(landmarks_out, regions, k, source=str(out / "landmarks.json"),
              image_size=(resolution, resolution)).save_json(out / "landmarks.json")

    columns = frames_per_still + 1
    if preview_rows:
        flat = np.stack([im for row in preview_rows for im in row])
        flat_marks = np.stack([im for row in preview_marks for im in row])
    else:  # no frames at all: the stills alone
        flat = np.stack([_rgb(dataset.load(i)) for i in range(min(len(names), preview_stills))])
        flat_marks = flat
    atomic_write(out / "preview.png", encode_png(image_grid(flat, columns=columns)))
    atomic_write(out / "preview_landmarks.png", encode_png(image_grid(flat_marks, columns=columns)))
    seconds = time.perf_counter() - start
    summary = {"root": str(root), "n_stills": len(names), "n_images": n_images, "frames_per_still": frames_per_still,
               "resolution": resolution, "channels": channels, "driving": motion.source, "driving_frames":
               motion.num_frames, "landmarks": keypoints.source, "landmarks_space": landmarks_space,
               "driving_displacement_px": displacement_summary(motion),
               "missing_keypoints": len(absent), "seed": seed, "seconds": seconds,
               "seconds_per_still": seconds / max(len(names), 1)}
    atomic_write(out / "augment.json", json.dumps(summary, indent=1))
    log.info("motion transfer: %d stills -> %d images in %s (%.2f s)", len(names), n_images, out, seconds)
    return AugmentResult(out / "dataset.zip", out / "landmarks.json", out / "preview.png", n_images, len(names),
                         frames_per_still, seconds, out / "augment.json")
