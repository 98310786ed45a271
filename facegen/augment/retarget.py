"""Retargeting: driving keypoint motion carried onto a still face (the keypoint half of motion transfer).

The driving displacements from its neutral frame are carried into the still's frame by the similarity transform
between the driving neutral and the still (Umeyama 1991), i.e. normalised by face size and in-plane rotation,
then rescaled per region (eyes, brows, mouth, ...) by the ratio of region sizes (Igaue et al. 2025 animate
macaque stills this way with a learned thin-plate-spline motion model; here the motion is explicit).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facegen.augment.driving import DrivingMotion, similarity_fit
from facegen.data.keypoints import KeypointFileError, default_regions
from facegen.shapes import assert_shape

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
