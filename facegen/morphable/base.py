"""The linear 3D morphable model (3DMM) every facegen face model is an instance of.

A 3DMM (Blanz & Vetter 1999, eq. 1; Paysan et al. 2009, BFM) writes a face as
``S = mean_shape + sum_k id_k * id_basis[k] + sum_j exp_j * exp_basis[j]`` and its colour as
``T = albedo_mean + sum_k alb_k * albedo_basis[k]``, all meshes sharing one topology (``faces``).
Units are millimetres throughout facegen; loaders convert.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.path import Path as PolygonPath

from facegen.errors import ModelLayoutError
from facegen.shapes import assert_shape


def _as_tensor(array, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.detach().to(dtype).clone()
    return torch.as_tensor(np.array(array), dtype=dtype)


class MorphableModel(torch.nn.Module):
    """Linear morphable face model with identity, expression and albedo bases.

    Args:
        mean_shape: [V, 3] neutral mean face, mm.
        faces: [F, 3] triangle vertex indices.
        id_basis: [K_id, V, 3] identity offsets, mm per unit coefficient (K_id may be 0).
        exp_basis: [K_exp, V, 3] expression offsets, mm per unit coefficient (K_exp may be 0).
        exp_names: one name per expression coefficient (defaults to ``exp_000``...).
        albedo_mean: [V, 3] diffuse colour in [0, 1] (defaults to a constant skin tone).
        albedo_basis: [K_alb, V, 3] colour offsets per unit coefficient (defaults to none).
        landmark_indices: [68] vertex indices in Multi-PIE 68-point order, or None.
        regions: name -> vertex indices (``face``, ``eyes``, ``mouth``, ``brows``, ...).
        name: a short label for reprs and logs.

    Raises:
        ModelLayoutError: when the arrays disagree in vertex count or have the wrong rank.

    Coefficients are plain numbers per basis vector (PCA models: in units of standard deviation
    when the loader folds the standard deviations into the basis, which all facegen loaders do).
    Regions and landmarks are buffers, so ``.to(device)`` moves them with the bases.
    """

    unit = "mm"

    def __init__(self, mean_shape, faces, id_basis=None, exp_basis=None, exp_names: Sequence[str] | None = None,
                 albedo_mean=None, albedo_basis=None, landmark_indices=None,
                 regions: Mapping[str, Sequence[int]] | None = None, name: str = "morphable"):
        super().__init__()
        mean = _as_tensor(mean_shape, torch.float32)
        assert_shape(mean, ["V", 3], f"{name}: mean_shape", error=ModelLayoutError, hint="mm")
        n_vertices = mean.shape[0]

        def basis(array, label: str) -> torch.Tensor:
            if array is None:
                return torch.zeros(0, n_vertices, 3)
            tensor = _as_tensor(array, torch.float32)
            assert_shape(tensor, ["K", n_vertices, 3], f"{name}: {label}", error=ModelLayoutError,
                         hint="one offset per mean_shape vertex")
            return tensor

        faces_t = _as_tensor(faces, torch.int64)
        assert_shape(faces_t, ["F", 3], f"{name}: faces", error=ModelLayoutError, hint="triangle vertex indices")
        if faces_t.numel() and (faces_t.min() < 0 or faces_t.max() >= n_vertices):
            raise ModelLayoutError(f"{name}: faces index outside 0..{n_vertices - 1}")
        self.name = name
        self.register_buffer("mean_shape", mean)
        self.register_buffer("faces", faces_t)
        self.register_buffer("id_basis", basis(id_basis, "id_basis"))
        self.register_buffer("exp_basis", basis(exp_basis, "exp_basis"))
        if albedo_mean is None:
            albedo_mean = np.broadcast_to(np.array([0.78, 0.57, 0.47]), (n_vertices, 3))
        alb_mean = _as_tensor(albedo_mean, torch.float32)
        assert_shape(alb_mean, [n_vertices, 3], f"{name}: albedo_mean", error=ModelLayoutError,
                     hint="one colour per mean_shape vertex")
        self.register_buffer("albedo_mean", alb_mean)
        self.register_buffer("albedo_basis", basis(albedo_basis, "albedo_basis"))
        self.exp_names = list(exp_names) if exp_names is not None else [f"exp_{j:03d}" for j in range(self.n_exp)]
        if len(self.exp_names) != self.n_exp:
            raise ModelLayoutError(f"{name}: {len(self.exp_names)} exp_names for {self.n_exp} expression bases")
        if landmark_indices is not None:
            landmark_indices = _as_tensor(landmark_indices, torch.int64)
            assert_shape(landmark_indices, [68], f"{name}: landmark_indices", error=ModelLayoutError,
                         hint="Multi-PIE 68-point order")
            if landmark_indices.max() >= n_vertices:
                raise ModelLayoutError(f"{name}: landmark_indices must be vertex indices < {n_vertices}")
        self.register_buffer("landmark_indices", landmark_indices)
        self._region_names: list[str] = []
        for region, indices in (regions or {}).items():
            self._region_names.append(region)
            self.register_buffer(f"region_{region}", _as_tensor(indices, torch.int64))

    # ------------------------------------------------------------------ sizes
    @property
    def n_vertices(self) -> int:
        return self.mean_shape.shape[0]

    @property
    def n_id(self) -> int:
        return self.id_basis.shape[0]

    @property
    def n_exp(self) -> int:
        return self.exp_basis.shape[0]

    @property
    def n_alb(self) -> int:
        return self.albedo_basis.shape[0]

    @property
    def regions(self) -> dict[str, torch.Tensor]:
        """Region name -> LongTensor of vertex indices (on the model's device)."""
        return {name: getattr(self, f"region_{name}") for name in self._region_names}

    # ------------------------------------------------------------------ evaluation
    def _coeffs(self, coeffs: torch.Tensor | None, k: int, batch: int, label: str) -> torch.Tensor:
        if coeffs is None:
            return self.mean_shape.new_zeros(batch, k)
        assert_shape(coeffs, ["B", k], f"{self.name}: {label}", error=ModelLayoutError)
        assert_shape(coeffs, [batch, k], f"{self.name}: {label}", error=ModelLayoutError,
                     hint="the batch size of the other coefficients")
        return coeffs.to(self.mean_shape.dtype)

    def _batch(self, *tensors: torch.Tensor | None) -> int:
        """The batch size of the first coefficients given (1 for none); :meth:`_coeffs` checks the others."""
        given = [t for t in tensors if t is not None]
        return int(given[0].shape[0]) if given and given[0].ndim else 1

    def identity_shape(self, id_coeffs: torch.Tensor | None) -> torch.Tensor:
        """Neutral faces ``mean_shape + id_coeffs @ id_basis``: [B, K_id] -> [B, V, 3] mm (B = 1 for None)."""
        batch = self._batch(id_coeffs)
        alpha = self._coeffs(id_coeffs, self.n_id, batch, "id_coeffs")
        return self.mean_shape + torch.einsum("bk,kvc->bvc", alpha, self.id_basis)

    def vertices(self, id_coeffs: torch.Tensor | None = None, exp_coeffs: torch.Tensor | None = None) -> torch.Tensor:
        """Face vertices for identity [B, K_id] and expression [B, K_exp] coefficients -> [B, V, 3] mm.

        Either may be None (zeros); B = 1 when both are None. Differentiable w.r.t. both.
        Raises ModelLayoutError for a wrong coefficient shape.
        """
        batch = self._batch(id_coeffs, exp_coeffs)
        alpha = self._coeffs(id_coeffs, self.n_id, batch, "id_coeffs")
        delta = self._coeffs(exp_coeffs, self.n_exp, batch, "exp_coeffs")
        return (self.mean_shape + torch.einsum("bk,kvc->bvc", alpha, self.id_basis)
                + torch.einsum("bk,kvc->bvc", delta, self.exp_basis))

    def albedo(self, alb_coeffs: torch.Tensor | None = None) -> torch.Tensor:
        """Per-vertex diffuse albedo for [B, K_alb] coefficients -> [B, V, 3], clamped to [0, 1]."""
        batch = self._batch(alb_coeffs)
        beta = self._coeffs(alb_coeffs, self.n_alb, batch, "alb_coeffs")
        return (self.albedo_mean + torch.einsum("bk,kvc->bvc", beta, self.albedo_basis)).clamp(0.0, 1.0)

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 68 Multi-PIE landmarks of meshes [B, V, 3] -> [B, 68, 3].

        Raises ModelLayoutError when the model has no landmark indices or the vertex count differs.
        """
        if self.landmark_indices is None:
            raise ModelLayoutError(f"{self.name}: this model has no 68-point landmark indices")
        assert_shape(vertices, ["B", self.n_vertices, 3], f"{self.name}: vertices", error=ModelLayoutError)
        return vertices[:, self.landmark_indices]

    # ------------------------------------------------------------------ cropping
    def crop(self, vertex_indices) -> MorphableModel:
        """A new model restricted to ``vertex_indices`` (e.g. the face area of a full-head model).

        Faces with all three vertices kept are re-indexed; landmarks are re-indexed (None if any
        landmark vertex is dropped); regions are intersected with the kept set. A model whose
        ``vertices()`` is not the linear formula (the procedural face) is wrapped in a
        :class:`CroppedModel` that evaluates the full model and selects the kept vertices.
        Raises ModelLayoutError for indices outside 0..V-1.
        """
        keep, remap, faces = self._crop_maps(vertex_indices)
        parts = dict(mean_shape=self.mean_shape[keep], faces=faces, id_basis=self.id_basis[:, keep],
                     exp_basis=self.exp_basis[:, keep], exp_names=self.exp_names, albedo_mean=self.albedo_mean[keep],
                     albedo_basis=self.albedo_basis[:, keep], landmark_indices=self._cropped_landmarks(remap),
                     regions=self._cropped_regions(remap), name=f"{self.name}[crop]")
        if type(self).vertices is MorphableModel.vertices:
            return MorphableModel(**parts)
        return CroppedModel(self, keep, **parts)

    def _crop_maps(self, vertex_indices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        keep = torch.as_tensor(np.asarray(vertex_indices), dtype=torch.int64, device=self.faces.device)
        assert_shape(keep, ["N"], f"{self.name}: crop indices", error=ModelLayoutError)
        if keep.numel() == 0 or keep.min() < 0 or keep.max() >= self.n_vertices:
            raise ModelLayoutError(f"{self.name}: crop indices must be non-empty and within 0..{self.n_vertices - 1}")
        keep = torch.unique(keep)
        remap = torch.full((self.n_vertices,), -1, dtype=torch.int64, device=keep.device)
        remap[keep] = torch.arange(keep.numel(), device=keep.device)
        faces = remap[self.faces]
        return keep, remap, faces[(faces >= 0).all(dim=1)]

    def _cropped_landmarks(self, remap: torch.Tensor) -> torch.Tensor | None:
        if self.landmark_indices is None:
            return None
        landmarks = remap[self.landmark_indices]
        return None if (landmarks < 0).any() else landmarks

    def _cropped_regions(self, remap: torch.Tensor) -> dict[str, torch.Tensor]:
        regions = {}
        for region, indices in self.regions.items():
            mapped = remap[indices]
            regions[region] = mapped[mapped >= 0]
        return regions

    def extra_repr(self) -> str:
        return (f"name={self.name}, V={self.n_vertices}, F={self.faces.shape[0]}, K_id={self.n_id}, "
                f"K_exp={self.n_exp}, K_alb={self.n_alb}, unit={self.unit}")


class CroppedModel(MorphableModel):
    """A vertex subset of a non-linear morphable model: ``vertices()`` evaluates ``parent`` and selects.

    The linear buffers (``mean_shape``, ``id_basis``, ``exp_basis``, albedo) are the parent's restricted
    to ``keep``; ``expression_presets`` are shared with the parent when it has them.
    """

    def __init__(self, parent: MorphableModel, keep: torch.Tensor, **parts):
        super().__init__(**parts)
        self.parent = parent
        self.register_buffer("keep_indices", keep.clone())
        if hasattr(parent, "expression_presets"):
            self.expression_presets = parent.expression_presets

    def vertices(self, id_coeffs: torch.Tensor | None = None, exp_coeffs: torch.Tensor | None = None) -> torch.Tensor:
        """The parent's vertices at the kept indices: [B, V_keep, 3] mm."""
        return self.parent.vertices(id_coeffs, exp_coeffs)[:, self.keep_indices]


def _segment_distance(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance of points [N, 2] to a polyline [M, 2] (M >= 1)."""
    if len(polyline) == 1:
        return np.linalg.norm(points - polyline[0], axis=1)
    a, b = polyline[:-1], polyline[1:]
    ab = b - a
    t = np.clip(np.einsum("nmc,mc->nm", points[:, None] - a[None], ab) / np.maximum((ab ** 2).sum(-1), 1e-12), 0, 1)
    nearest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(points[:, None] - nearest, axis=-1).min(axis=1)


def regions_from_landmarks(vertices, landmark_indices, candidates=None, scale: float = 1.0,
                           depth_margin: float = 20.0) -> dict[str, np.ndarray]:
    """Named face regions of a frontal mesh (x right-to-left of the subject, y up, z towards the camera), mm.

    Regions are drawn in the image plane (x, y) around the 68 Multi-PIE landmarks: eyes and lips are
    their landmark polygons grown by a margin, brows/nose/jaw lie within a distance of their landmark
    polylines, cheeks are discs between the jaw contour and the nose. ``face`` is all ``candidates``
    (default: all vertices); the other regions use only candidates in front of
    ``min z of the landmarks - depth_margin``. Margins are in mm
    for an adult face and multiplied by ``scale``.

    Args:
        vertices: [V, 3] neutral mesh, mm. landmark_indices: [68]. candidates: vertex ids to consider.

    Returns:
        name -> int64 vertex ids for face, eye_left, eye_right, eyes, brows, nose, mouth, lips, jaw, cheeks
        (``_left`` = subject's left, x > 0).

    Raises:
        ModelLayoutError: ``vertices`` is not ``[V, 3]`` or ``landmark_indices`` not ``[68]``.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    assert_shape(vertices, ["V", 3], "vertices", error=ModelLayoutError, hint="a neutral mesh, mm")
    assert_shape(np.asarray(landmark_indices), [68], "landmark_indices", error=ModelLayoutError,
                 hint="Multi-PIE 68-point order")
    lm = vertices[np.asarray(landmark_indices)]
    everything = np.arange(len(vertices)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    pool = everything[vertices[everything, 2] > lm[:, 2].min() - depth_margin]
    xy = vertices[pool, :2]

    def polygon(ids, margin):
        inside = PolygonPath(lm[ids, :2]).contains_points(xy)
        return inside | (_segment_distance(xy, lm[list(ids) + [ids[0]], :2]) <= margin * scale)

    def near(ids, margin):
        return _segment_distance(xy, lm[ids, :2]) <= margin * scale

    eye_right, eye_left = polygon(list(range(36, 42)), 4.0), polygon(list(range(42, 48)), 4.0)
    brows = near(list(range(17, 22)), 5.0) | near(list(range(22, 27)), 5.0)
    nose = polygon([27, 31, 32, 33, 34, 35], 4.0) | near([27, 28, 29, 30], 6.0)
    lips = polygon(list(range(48, 60)), 1.5)
    mouth = polygon(list(range(48, 60)), 8.0)
    jaw = near(list(range(17)), 12.0) | (xy[:, 1] < lm[57, 1] - 4.0 * scale)
    face_width = np.linalg.norm(lm[16, :2] - lm[0, :2])
    cheeks = np.zeros(len(pool), dtype=bool)
    for contour, nostril in ((2, 31), (14, 35)):
        centre = 0.5 * (lm[contour, :2] + lm[nostril, :2]) + np.array([0.0, 0.05 * face_width])
        cheeks |= np.linalg.norm(xy - centre, axis=1) <= 0.17 * face_width
    cheeks &= ~(nose | mouth | eye_left | eye_right)
    masks = {"eye_left": eye_left, "eye_right": eye_right,
             "eyes": eye_left | eye_right, "brows": brows, "nose": nose, "mouth": mouth, "lips": lips, "jaw": jaw,
             "cheeks": cheeks}
    regions = {"face": everything.astype(np.int64)}
    regions.update({name: pool[mask].astype(np.int64) for name, mask in masks.items()})
    return regions


SUBSTITUTE_ALBEDO_NAMES = ("skin_tone", "redness", "lip_red", "brow_dark")


def substitute_albedo(n_vertices: int, regions: Mapping[str, Sequence[int]] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in albedo for models without a colour model (ICT-FaceKit light, FLAME).

    Mean: constant skin (0.78, 0.57, 0.47), lips (``regions["lips"]``) (0.70, 0.40, 0.40), brows
    (``regions["brows"]``) (0.40, 0.30, 0.25). Basis [4, V, 3] (:data:`SUBSTITUTE_ALBEDO_NAMES`):
    darker/lighter skin, redness, redder lips, darker brows, each about one plausible standard deviation.
    Not fitted to data: enough for shading and synthetic images, not for albedo estimation.
    """
    regions = regions or {}
    skin = np.ones(n_vertices)
    lips, brows = np.zeros(n_vertices), np.zeros(n_vertices)
    lips[np.asarray(regions.get("lips", []), dtype=np.int64)] = 1.0
    brows[np.asarray(regions.get("brows", []), dtype=np.int64)] = 1.0
    mean = np.array([0.78, 0.57, 0.47]) * (1 - lips - brows + lips * brows)[:, None] \
        + np.array([0.70, 0.40, 0.40]) * lips[:, None] + np.array([0.40, 0.30, 0.25]) * (brows * (1 - lips))[:, None]
    basis = np.stack([np.array([-0.18, -0.16, -0.14]) * skin[:, None], np.array([0.05, -0.03, -0.03]) * skin[:, None],
                      np.array([0.08, -0.06, -0.04]) * lips[:, None], np.array([-0.12, -0.12, -0.12]) * brows[:, None]])
    return mean, basis
