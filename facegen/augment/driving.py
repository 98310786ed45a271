"""Driving motion for motion-transfer augmentation: 2D keypoint trajectories relative to a neutral frame.

Two sources (Igaue et al. 2025, sec. "motion transfer": still photos are animated by a thin-plate-spline
motion model driven by computer-graphics animations):

- :func:`faceworld_driving`: the computer-graphics route. facegen's procedural 3D face
  (:class:`facegen.morphable.ProceduralFaceModel`) is animated through named expressions (FaceScape preset
  names, rig control names, or the macaque-style aliases in :data:`EXPRESSION_ALIASES`) from neutral to full
  strength; its 68 landmarks are projected to 2D by a :class:`facegen.render.FaceRenderer` camera.
- :func:`video_driving`: a landmark-annotated video (one landmark set per frame, in a file) or a real video
  itself (``.mp4`` ...: dlib's 68 landmarks per frame, :func:`facegen.faces.video_landmarks`), with the head
  motion removed by a per-frame similarity alignment onto the neutral frame.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facegen.data.keypoints import KeypointFileError, default_regions, load_keypoints
from facegen.faces import FaceInputError, is_video, video_landmarks
from facegen.morphable import FACESCAPE_EXPRESSIONS, ProceduralFaceModel
from facegen.render import FaceRenderer, PerspectiveCamera
from facegen.shapes import assert_shape

EXPRESSION_ALIASES: dict[str, dict[str, float]] = {
    "blink": {"blink_L": 1.0, "blink_R": 1.0},
    "brow_raise": {"brow_inner_up": 1.0, "brow_outer_up": 1.0},
    "lip_smack": {"lip_pucker": 0.8, "jaw_open": 0.12, "lip_press": 0.3},
    "threat": {"jaw_open": 0.7, "brow_inner_up": 0.8, "brow_outer_up": 0.8, "mouth_stretch_L": 0.3,
               "mouth_stretch_R": 0.3},
    "yawn": {"jaw_open": 1.0, "mouth_stretch_L": 0.5, "mouth_stretch_R": 0.5, "blink_L": 0.6, "blink_R": 0.6},
}
"""Macaque-style expressions of the paper's edit list, as rig controls of the procedural face (open-mouth
threat = open jaw + raised brows; lip smack = puckered, slightly parted lips; yawn = wide open jaw, eyes
half closed). Gaze needs eyeballs, which the procedural face has not."""


@dataclass
class DrivingMotion:
    """Keypoint trajectories of a driving sequence.

    Attributes:
        landmarks: ``[T, K, 2]`` float32 driving keypoints per frame, pixels of the driving source.
        neutral: ``[K, 2]`` the neutral (reference) frame.
        regions: region name -> point indices (as :class:`facegen.data.keypoints.Keypoints`).
        labels: ``T`` frame labels (e.g. ``"smile@0.50"``).
        source: where the motion came from (for messages and reports).
    """

    landmarks: np.ndarray
    neutral: np.ndarray
    regions: dict[str, np.ndarray]
    labels: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        self.landmarks = np.asarray(self.landmarks, np.float32)
        self.neutral = np.asarray(self.neutral, np.float32)
        where = self.source or "driving motion"
        assert_shape(self.landmarks, ["T", "K", 2], f"{where}: landmarks", error=KeypointFileError,
                     hint="keypoints per frame, pixels")
        assert_shape(self.neutral, list(self.landmarks.shape[1:]), f"{where}: neutral", error=KeypointFileError,
                     hint="the [K, 2] keypoints of the neutral frame")
        if not np.isfinite(self.landmarks).all():
            raise KeypointFileError(f"{where}: landmarks contain NaN or inf")
        if not self.labels:
            self.labels = [f"frame{t:04d}" for t in range(len(self.landmarks))]

    @property
    def num_frames(self) -> int:
        return int(self.landmarks.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.landmarks.shape[1])

    @property
    def displacements(self) -> np.ndarray:
        """``[T, K, 2]`` keypoint offsets from the neutral frame, driving pixels."""
        return self.landmarks - self.neutral[None]


def expression_coefficients(model, name: str) -> torch.Tensor:
    """``[K_exp]`` rig values of expression ``name``: a preset (FaceScape name), an alias, or one rig control.

    Raises:
        KeypointFileError: an unknown name (lists the known ones).
    """
    presets = getattr(model, "expression_presets", {}) or {}
    if name in presets:
        return presets[name].clone()
    coeffs = torch.zeros(model.n_exp)
    if name in EXPRESSION_ALIASES:
        for control, value in EXPRESSION_ALIASES[name].items():
            coeffs[model.exp_names.index(control)] = value
        return coeffs
    if name in model.exp_names:
        coeffs[model.exp_names.index(name)] = 1.0
        return coeffs
    raise KeypointFileError(f"unknown driving expression {name!r}; expected a preset {sorted(presets)}, an alias "
                            f"{sorted(EXPRESSION_ALIASES)} or a rig control {list(model.exp_names)}")


def default_expressions(model=None) -> list[str]:
    """Every FaceScape preset except neutral, then the macaque aliases."""
    return [n for n in FACESCAPE_EXPRESSIONS if n != "neutral"] + list(EXPRESSION_ALIASES)


@torch.no_grad()
def faceworld_driving(expressions: Sequence[str] | None, frames: int, seed: int = 0, *, model=None,
                      identity_std: float = 0.0, strength: float = 1.0, image_size: int = 256,
                      fov_degrees: float = 12.0) -> DrivingMotion:
    """Driving motion from facegen's procedural 3D face going through named expressions.

    For each expression the face goes from neutral to ``strength`` in ``frames`` steps, intensities
    ``strength * t / frames`` for ``t = 1..frames`` (the neutral frame itself is left out: it moves nothing).
    The 68 landmarks (Multi-PIE order) are projected by a frontal perspective camera framing the mean face
    (:meth:`facegen.render.FaceRenderer.project`); no image is rendered.

    Args:
        expressions: names (see :func:`expression_coefficients`); None = :func:`default_expressions`.
        frames: frames per expression (>= 1); ``T = len(expressions) * frames``.
        seed: seeds the identity when ``identity_std > 0`` (``identity ~ N(0, identity_std^2)``).
        model: the morphable model; default ``ProceduralFaceModel(seed=0)``.
        image_size: pixels of the virtual camera image (only scales the coordinates).

    Returns:
        :class:`DrivingMotion` with ``T`` frames, labels ``"<expression>@<intensity>"``, 68-point regions.

    Raises:
        KeypointFileError: unknown expression names or ``frames < 1``.
    """
    model = model or ProceduralFaceModel(seed=0)
    expressions = list(expressions) if expressions else default_expressions(model)
    if frames < 1:
        raise KeypointFileError(f"faceworld_driving needs frames >= 1, got {frames}")
    table = torch.stack([expression_coefficients(model, name) for name in expressions])        # [E, K_exp]
    intensity = strength * torch.arange(1, frames + 1, dtype=torch.float32) / frames           # [F]
    coeffs = (table[:, None] * intensity[None, :, None]).reshape(-1, model.n_exp)              # [E*F, K_exp]
    generator = torch.Generator().manual_seed(int(seed))
    identity = torch.randn(1, model.n_id, generator=generator) * identity_std
    camera = PerspectiveCamera.framing(model.mean_shape, fov_degrees=fov_degrees, margin=1.25)
    renderer = FaceRenderer(model, image_size, camera)
    all_coeffs = torch.cat([torch.zeros(1, model.n_exp), coeffs])                              # neutral first
    verts = model.vertices(identity.expand(len(all_coeffs), -1), all_coeffs)
    uv = renderer.project(model.landmarks(verts)).numpy()                                      # [1+T, 68, 2]
    labels = [f"{name}@{float(a):.2f}" for name in expressions for a in intensity]
    return DrivingMotion(uv[1:], uv[0], default_regions(68), labels,
                         source=f"faceworld({', '.join(expressions)}; {frames} frames each)")


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s R src + t`` of point sets ``[N, 2]`` (Umeyama 1991, eq. 40-42).

    Returns ``(s, R [2, 2], t [2])``; reflections are excluded.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ d @ vt
    var = (a ** 2).sum() / len(src)
    scale = float((sigma * np.diag(d)).sum() / max(var, 1e-12))
    return scale, rot, mu_d - scale * rot @ mu_s


STABLE_68 = [27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45]
"""Points that expressions hardly move (nose bridge and base, eye corners): used to remove head motion."""


def _read_trajectories(path: Path, stride: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray] | None, list[str]]:
    if is_video(path):
        try:
            found = video_landmarks(path, stride=stride)
        except FaceInputError as error:
            raise KeypointFileError(f"{path}: no driving landmarks ({error})") from error
        return found.landmarks, None, [f"frame{int(f):05d}" for f in found.frames]
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise KeypointFileError(f"{path}: cannot read landmark trajectories ({error})") from None
        if suffix == ".npz":
            if "landmarks" not in data:
                raise KeypointFileError(f"{path}: npz has no 'landmarks' array [T, K, 2] (keys: {list(data)})")
            array = data["landmarks"]
        else:
            array = data
        return np.asarray(array, np.float32), None, [f"frame{t:04d}" for t in range(len(array))]
    keypoints = load_keypoints(path)
    names = sorted(keypoints.names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])
    return np.stack([keypoints.points[n] for n in names]), keypoints.regions, names


def video_driving(landmarks_file: str | Path, *, neutral_frame: int = 0, stabilise: bool = True,
                  stable_points: Sequence[int] | None = None, stride: int = 1,
                  regions: dict | None = None) -> DrivingMotion:
    """Driving motion from a landmark-annotated video.

    Args:
        landmarks_file: per-frame landmarks: ``.npz`` with ``landmarks [T, K, 2]`` (e.g. a
            :func:`facegen.data.synthetic.write_expression_videos` clip), ``.npy [T, K, 2]``, a CSV/JSON
            keypoints file (:func:`facegen.data.keypoints.load_keypoints`) whose image names are the frames
            (ordered naturally: ``frame2`` before ``frame10``), or a video (:data:`facegen.faces.VIDEO_EXTENSIONS`):
            dlib's 68 landmarks of the largest face in every ``stride``-th frame (frames without a face are left
            out; labels ``frame<index>``; ~0.05-0.1 s per 256-400 px frame on one core).
        neutral_frame: index of the neutral (reference) frame.
        stabilise: remove head motion: each frame is mapped onto the neutral frame by the similarity
            transform fitted on ``stable_points`` (default :data:`STABLE_68` for 68 points, else all points).
        stride: keep every ``stride``-th frame (of a video: only those frames are read).
        regions: region name -> point indices (default: the file's, else by point count).

    Returns:
        :class:`DrivingMotion` (the neutral frame is kept among the frames).

    Raises:
        KeypointFileError: unreadable file, wrong array shape, fewer than 2 frames, bad ``neutral_frame``, a
            video without faces.
        FaceModelsMissing: a video without dlib or its models installed.
    """
    path = Path(landmarks_file).expanduser()
    if not path.exists():
        raise KeypointFileError(f"{path}: driving landmarks file not found")
    video = is_video(path)
    lm, file_regions, names = _read_trajectories(path, stride=max(1, stride))
    if video:
        stride = 1                                                       # already applied when reading
    assert_shape(lm, ["T", "K", 2], f"{path}: landmark trajectories", error=KeypointFileError,
                 hint="T >= 2 frames of K (x, y) points")
    if len(lm) < 2:
        raise KeypointFileError(f"{path}: landmark trajectories have {len(lm)} frame; a motion needs T >= 2")
    if not -len(lm) <= neutral_frame < len(lm):
        raise KeypointFileError(f"{path}: neutral_frame {neutral_frame} outside the {len(lm)} frames")
    neutral = lm[neutral_frame].copy()
    k = lm.shape[1]
    if stabilise:
        ids = list(stable_points) if stable_points is not None else (STABLE_68 if k == 68 else list(range(k)))
        aligned = np.empty_like(lm)
        for t in range(len(lm)):
            s, rot, shift = similarity_fit(lm[t, ids], neutral[ids])
            aligned[t] = (s * lm[t].astype(np.float64) @ rot.T + shift).astype(np.float32)
        lm = aligned
    keep = list(range(0, len(lm), max(1, stride)))
    return DrivingMotion(lm[keep], neutral, regions or file_regions or default_regions(k),
                         [names[t] for t in keep], source=f"video({path})")
