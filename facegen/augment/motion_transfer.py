"""Motion-transfer augmentation: animate still faces with driving keypoint motion and thin-plate-spline warps.

Igaue et al. 2025 (arXiv 2511.16711) animate few, expression-poor macaque photos with a thin-plate-spline
motion model driven by computer-graphics animations, and train StyleGAN2 on stills + frames. facegen does the
keypoint-driven part of that explicitly, with no learned motion network:

1. keypoints of each still (:mod:`facegen.data.keypoints`: a landmarks file, or the mean template);
2. driving displacements from a neutral frame (:mod:`facegen.augment.driving`: the procedural 3D face
   animated through named expressions, or a landmark-annotated video);
3. :func:`retarget`: the displacements are carried into the still's frame by the similarity transform
   between the driving neutral and the still (Umeyama 1991), i.e. normalised by face size and in-plane
   rotation, then rescaled per region (eyes, brows, mouth, ...) by the ratio of region sizes;
4. :func:`tps_warp`: a thin-plate spline (Bookstein 1989) through the keypoints (plus fixed image-border
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
from kornia.geometry.transform import get_tps_transform, warp_image_tps
from PIL import Image

from facegen.augment.driving import (
    DrivingMotion,
    faceworld_driving,
    similarity_fit,
    video_driving,
)
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
from facegen.errors import DatasetLayoutError, FacegenError
from facegen.shapes import assert_shape
from facegen.utils import atomic_write

log = logging.getLogger(__name__)

UMBRELLA_REGIONS = ("face",)
"""Regions that are not rescaled on their own in :func:`retarget` (they hold every point)."""


def face_size(points: np.ndarray) -> float:
    """Size of a point set ``[K, 2]``: root-mean-square distance of the points from their centroid (pixels)."""
    points = np.asarray(points, np.float64)
    return float(np.sqrt(((points - points.mean(0)) ** 2).sum(1).mean()))


def _idw(query: np.ndarray, sites: np.ndarray, values: np.ndarray, k: int = 4) -> np.ndarray:
    """Inverse-distance-squared interpolation of ``values [T, S, 2]`` at sites ``[S, 2]`` -> ``[T, Q, 2]``."""
    d = np.linalg.norm(query[:, None] - sites[None], axis=-1)                       # [Q, S]
    k = min(k, sites.shape[0])
    near = np.argsort(d, axis=1)[:, :k]                                              # [Q, k]
    w = 1.0 / np.maximum(np.take_along_axis(d, near, 1), 1e-6) ** 2
    w /= w.sum(1, keepdims=True)
    return (values[:, near] * w[None, :, :, None]).sum(2)                            # [T, Q, 2]


def retarget(driving: DrivingMotion, keypoints, regions: dict | None = None, *, frames: Sequence[int] | None = None,
             per_region: bool = True, max_region_ratio: float = 2.0, gain: float = 1.0) -> np.ndarray:
    """Carry driving displacements onto a still's keypoints.

    ``d_still = gain * r_region * s * R d_drive``, where ``(s, R)`` is the similarity (scale, rotation)
    from the driving neutral frame to the still's keypoints (Umeyama fit over the shared points, so the
    displacements are normalised by face size and in-plane rotation) and ``r_region`` =
    ``size(still region) / (s * size(driving region))`` (RMS radius, :func:`face_size`), clipped to
    ``[1 / max_region_ratio, max_region_ratio]``; a point in several regions takes the smallest one's ratio.

    Same point scheme (``K`` equal to the driving's): point ``i`` follows driving point ``i``. Another scheme
    with named regions: the driving neutral is mapped onto the still by a similarity fitted on the centroids of
    the shared regions (>= 2, else by RMS size and centroid), and each still point takes the
    inverse-distance-weighted displacement of the nearest driving points of its own region (of all points if
    the region is unknown); the per-region ratio is skipped there (region sizes of different point subsets
    are not comparable).

    Args:
        driving: :class:`DrivingMotion` (``T`` frames, ``K_d`` points).
        keypoints: ``[K, 2]`` pixel coordinates of the still.
        regions: region -> point indices of the still (default: by ``K``, see ``default_regions``).
        frames: driving frame indices to use (default: all ``T``).
        per_region: apply the per-region size ratio (else only the global similarity).
        gain: multiplies the displacements (expression strength).

    Returns:
        ``[T', K, 2]`` float32: the still's keypoints moved by the retargeted displacements (pixels).

    Raises:
        KeypointFileError: ``keypoints`` not ``[K, 2]`` or non-finite.
    """
    still = np.asarray(keypoints, np.float64)
    assert_shape(still, ["K", 2], "keypoints", error=KeypointFileError, hint="the still's (x, y) pixels")
    if not np.isfinite(still).all():
        raise KeypointFileError("retarget: keypoints contain NaN or inf")
    k = still.shape[0]
    regions = {n: np.asarray(v, np.int64) for n, v in (regions or default_regions(k)).items()}
    disp = driving.displacements.astype(np.float64)                                   # [T, K_d, 2]
    if frames is not None:
        disp = disp[np.asarray(frames, np.int64)]
    neutral = driving.neutral.astype(np.float64)
    d_regions = driving.regions
    shared = [r for r in regions
              if r in d_regions and r not in UMBRELLA_REGIONS and len(regions[r]) and len(d_regions[r])]

    if k == driving.num_points:
        s, rot, shift = similarity_fit(neutral, still)
        out = s * disp @ rot.T                                                        # [T, K, 2]
        mapped = s * neutral @ rot.T + shift
    else:
        if len(shared) >= 2:
            src = np.stack([neutral[d_regions[r]].mean(0) for r in shared])
            dst = np.stack([still[regions[r]].mean(0) for r in shared])
            s, rot, shift = similarity_fit(src, dst)
        else:
            s = face_size(still) / max(face_size(neutral), 1e-9)
            rot = np.eye(2)
            shift = still.mean(0) - s * neutral.mean(0)
        mapped = s * neutral @ rot.T + shift
        moved = s * disp @ rot.T
        out = _idw(still, mapped, moved)                                              # all points first
        for r in sorted(shared, key=lambda r: -len(regions[r])):
            out[:, regions[r]] = _idw(still[regions[r]], mapped[d_regions[r]], moved[:, d_regions[r]])
    if per_region and k == driving.num_points:
        ratio = np.ones(k)
        for r in sorted(shared, key=lambda r: -len(regions[r])):                      # smaller regions win
            if len(regions[r]) < 2:
                continue
            size = face_size(still[regions[r]]) / max(face_size(mapped[d_regions[r]]), 1e-9)
            ratio[regions[r]] = float(np.clip(size, 1.0 / max_region_ratio, max_region_ratio))
        out = out * ratio[None, :, None]
    return (still[None] + gain * out).astype(np.float32)


def border_anchors(height: int, width: int, per_side: int = 4) -> torch.Tensor:
    """``[4 * per_side, 2]`` pixel points evenly spaced on the image border (corners included), held fixed."""
    t = torch.linspace(0.0, 1.0, per_side + 1)[:-1]
    x0, x1, y0, y1 = -0.5, width - 0.5, -0.5, height - 0.5
    top = torch.stack([x0 + t * (x1 - x0), torch.full_like(t, y0)], -1)
    right = torch.stack([torch.full_like(t, x1), y0 + t * (y1 - y0)], -1)
    bottom = torch.stack([x1 - t * (x1 - x0), torch.full_like(t, y1)], -1)
    left = torch.stack([torch.full_like(t, x0), y1 - t * (y1 - y0)], -1)
    return torch.cat([top, right, bottom, left])


def separate_points(reference: np.ndarray, points: np.ndarray, min_separation: float = 1.0) -> np.ndarray:
    """``points [..., K, 2]`` with pairs pushed apart to ``min(min_separation, their distance in reference)``.

    A thin-plate spline cannot map two distinct points onto one (the system is singular): when a driven
    eyelid lands on the other lid (``points`` = destinations, ``reference`` = sources), or when the still's
    inner and outer lip points coincide and the mouth opens (``points`` = sources, ``reference`` =
    destinations), the later point of each close pair is set ``min_separation`` away from the earlier one
    along their direction in ``reference`` (a slit stays open). Pairs that also coincide in ``reference``
    are left alone (:func:`tps_warp` uses such duplicates once). ``reference`` broadcasts against ``points``.
    """
    ref = np.asarray(reference, np.float64)
    out = np.array(points, np.float64, copy=True)
    ref = np.broadcast_to(ref, out.shape).reshape(-1, *out.shape[-2:])
    flat = out.reshape(-1, *out.shape[-2:])
    for b in range(flat.shape[0]):
        for _ in range(3):  # a few passes: moving one pair can bring a third point close
            d = np.linalg.norm(flat[b][:, None] - flat[b][None], axis=-1)
            i, j = np.nonzero(np.triu(d < min_separation, 1))
            moved = False
            for a, c in zip(i, j):
                direction = ref[b, c] - ref[b, a]
                norm = np.linalg.norm(direction)
                target = min(min_separation, norm)  # never wider apart than in the reference
                if norm < 1e-6 or np.linalg.norm(flat[b, c] - flat[b, a]) >= target - 1e-9:
                    continue
                flat[b, c] = flat[b, a] + direction / norm * target
                moved = True
            if not moved:
                break
    return flat.reshape(out.shape).astype(np.float32)


def _normalise(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates (centres at integers) -> grid_sample's ``align_corners=False`` frame."""
    scale = points.new_tensor([2.0 / width, 2.0 / height])
    return (points + 0.5) * scale - 1.0


def tps_weights(sites: torch.Tensor, values: torch.Tensor, smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bookstein's thin-plate spline through ``sites [B, N, 2] -> values [B, N, 2]`` (Bookstein 1989, eq. 1-3).

    ``f(x) = a_0 + a_x x + a_y y + sum_j w_j U(|x - site_j|)`` with kornia's kernel ``U(r) = r^2 log r``
    (``0.5 r^2 log r^2``, :func:`kornia.geometry.transform.thin_plate_spline._kernel_distance`), solved from
    ``[[K + smoothing I, P], [P^T, 0]] [w; a] = [values; 0]`` in float64. Returns ``(kernel_weights [B, N, 2],
    affine_weights [B, 3, 2])`` in the layout of kornia's ``warp_points_tps`` / ``warp_image_tps`` with
    ``kernel_centers = sites``.

    kornia 0.9's own ``get_tps_transform(a, b)`` puts the kernels at the *values* ``b`` while interpolating at
    ``a``; that system is not Bookstein's and turns ill-conditioned once points move by about their spacing
    (measured on a 64-pixel face: a 4.8-pixel mouth opening sent parts of the image 235 pixels away), hence
    this solve; :func:`tps_warp` can still use kornia's with ``solver="kornia"``.
    """
    b, n, _ = sites.shape
    sites64, values64 = sites.to(torch.float64), values.to(torch.float64)
    r2 = torch.cdist(sites64, sites64).square()
    safe = torch.where(r2 > 0, r2, torch.ones_like(r2))
    kernel = torch.where(r2 > 0, 0.5 * r2 * torch.log(safe), torch.zeros_like(r2))                  # U(r) = r^2 log r
    kernel = kernel + smoothing * torch.eye(n, dtype=torch.float64, device=sites.device)
    p = torch.cat([torch.ones(b, n, 1, dtype=torch.float64, device=sites.device), sites64], -1)     # [B, N, 3]
    top = torch.cat([kernel, p], -1)                                                                  # [B, N, N+3]
    bottom = torch.cat([p.transpose(1, 2), torch.zeros(b, 3, 3, dtype=torch.float64, device=sites.device)], -1)
    rhs = torch.cat([values64, torch.zeros(b, 3, 2, dtype=torch.float64, device=sites.device)], 1)
    solution = torch.linalg.solve(torch.cat([top, bottom], 1), rhs)                                  # [B, N+3, 2]
    return solution[:, :n], solution[:, n:]


def tps_warp(image: torch.Tensor, src_kp: torch.Tensor, dst_kp: torch.Tensor, *, anchors_per_side: int = 4,
             padding_mode: str = "border", min_separation: float = 1.0, dedupe: float = 1e-3,
             solver: str = "bookstein", smoothing: float = 0.0) -> torch.Tensor:
    """Warp images so that the content at ``src_kp`` moves to ``dst_kp`` (thin-plate spline, kornia warp).

    The spline goes through the keypoints plus ``4 * anchors_per_side`` fixed points on the image border
    (:func:`border_anchors`; 0 = none), so the frame stays put. :func:`kornia.geometry.transform.warp_image_tps`
    maps each output pixel back to an input pixel, so the spline maps ``dst -> src``: Bookstein's spline with
    the sites at ``dst`` (:func:`tps_weights`, default) or kornia's ``get_tps_transform(dst, src)`` with kernel
    centres ``src`` (``solver="kornia"``, unstable for large motions); both in grid_sample's
    ``align_corners=False`` frame. Destination points closer than ``min_separation`` pixels are pushed apart
    (:func:`separate_points`: a closing eyelid keeps a slit, otherwise the system is singular) and points that
    coincide in both sets (within ``dedupe`` pixels) are used once.

    Args:
        image: ``[B, C, H, W]`` float (any range).
        src_kp, dst_kp: ``[B, K, 2]`` pixel coordinates (u right, v down, pixel centres at integers).
        padding_mode: grid_sample padding outside the image (``"border"``, ``"zeros"``, ``"reflection"``).
        smoothing: Bookstein's regulariser ``lambda`` (0 = exact interpolation).

    Returns:
        ``[B, C, H, W]`` warped images, same dtype as ``image``.

    Raises:
        facegen.errors.ShapeError: ``image`` is not ``[B, C, H, W]`` or ``src_kp``, ``dst_kp`` not both ``[B, K, 2]``.
        FacegenError: an unknown ``solver``.
    """
    assert_shape(image, ["B", "C", "H", "W"], "image")
    assert_shape(src_kp, [image.shape[0], "K", 2], "src_kp", hint="(x, y) pixels per image of the batch")
    assert_shape(dst_kp, list(src_kp.shape), "dst_kp", hint="the shape of src_kp")
    if solver not in ("bookstein", "kornia"):
        raise FacegenError(f"tps_warp: solver={solver!r}; expected 'bookstein' or 'kornia'")
    b, _, h, w = image.shape
    src_np = src_kp.detach().cpu().double().numpy()
    dst_np = dst_kp.detach().cpu().double().numpy()
    if min_separation > 0:
        if solver == "kornia":  # its kernel centres are the sources: they must be distinct too
            src_np = separate_points(dst_np, src_np, min_separation)
        dst_np = separate_points(src_np, dst_np, min_separation)
    src = torch.from_numpy(np.asarray(src_np, np.float64))
    dst = torch.from_numpy(np.asarray(dst_np, np.float64))
    if anchors_per_side > 0:
        anchors = border_anchors(h, w, anchors_per_side).to(torch.float64)[None].expand(b, -1, -1)
        src, dst = torch.cat([src, anchors], 1), torch.cat([dst, anchors], 1)
    out = []
    for i in range(b):  # per image: the duplicates differ between images
        d_i, s_i = dst[i], src[i]
        close = (torch.cdist(d_i, d_i) < dedupe) & ((torch.cdist(s_i, s_i) < dedupe) | (solver == "bookstein"))
        keep = ~torch.triu(close, 1).any(0)
        d_n = _normalise(d_i[keep], h, w)[None].to(image.device)
        s_n = _normalise(s_i[keep], h, w)[None].to(image.device)
        if solver == "bookstein":
            kernel_w, affine_w = tps_weights(d_n, s_n, smoothing)
            centres = d_n
        else:
            kernel_w, affine_w = get_tps_transform(d_n, s_n)
            centres = s_n
        out.append(warp_image_tps(image[i:i + 1].to(torch.float64), centres, kernel_w, affine_w,
                                  align_corners=False, padding_mode=padding_mode))
    return torch.cat(out).to(image.dtype)


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


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


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
                archive.writestr(f"{stems[i]}.png", _png(stills[slot]))
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
                archive.writestr(member, _png(frames[j]))
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
    atomic_write(out / "preview.png", _png(image_grid(flat, columns=columns)))
    atomic_write(out / "preview_landmarks.png", _png(image_grid(flat_marks, columns=columns)))
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
