"""ICT-FaceKit light face model (Li et al., "Learning Formation of Physically-Based Face Attributes", CVPR 2020).

Layout (``ICT-VGL/ICT-FaceKit`` ``FaceXModel/``): ``generic_neutral_mesh.obj``, identity shape modes
``identity000.obj`` ..., ARKit expression blendshapes ``jawOpen.obj`` ... (names listed in
``vertex_indices.json["expressions"]``, plus extra OBJs such as ``cheekRaiser_L``), and
``vertex_indices.json`` (68 Multi-PIE landmark vertex ids, fitting and rigid vertex ids). Every OBJ is
a full mesh of 26,719 vertices in centimetres; a mode is ``mesh - generic_neutral`` (as ICT-FaceKit's
``face_model_io.py`` builds its deltas), with identity weights in standard deviations.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from facegen.errors import DatasetLayoutError
from facegen.geometry import load_mesh
from facegen.morphable.base import (
    MorphableModel,
    regions_from_landmarks,
    substitute_albedo,
)
from facegen.utils import atomic_write

ICT_VERTICES = 26719
FACE_AREA_VERTICES = 9409        # vertices 0..9408 are the face area; 0..6705 the narrow face
NARROW_FACE_VERTICES = 6706
CM_TO_MM = 10.0
_CACHE_VERSION = "ict-v1"


def _model_folder(root: str | os.PathLike) -> Path:
    root = Path(root)
    for folder in (root / "FaceXModel", root):
        if (folder / "generic_neutral_mesh.obj").is_file():
            return folder
    raise DatasetLayoutError(
        f"{root}: no ICT-FaceKit model found; expected {root}/FaceXModel/generic_neutral_mesh.obj "
        "(or the FaceXModel folder itself) with identityNNN.obj, <blendshape>.obj and vertex_indices.json")


def _read_indices(folder: Path) -> dict:
    path = folder / "vertex_indices.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetLayoutError(f"{path}: unreadable ({error}); expected ICT-FaceKit's vertex_indices.json") from error
    for key in ("expressions", "idx_to_landmark_verts"):
        if key not in meta:
            raise DatasetLayoutError(f"{path}: missing key {key!r}")
    if len(meta["idx_to_landmark_verts"]) != 68:
        raise DatasetLayoutError(f"{path}: 'idx_to_landmark_verts' has {len(meta['idx_to_landmark_verts'])} "
                                 "entries, expected 68 (Multi-PIE order)")
    return meta


def _cache_key(files: list[Path]) -> str:
    digest = hashlib.sha1(_CACHE_VERSION.encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _load_meshes(files: list[Path], cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [N, 26719, 3] float32 mm of ``files`` and the faces of the first; cached as .npz."""
    cache = None if cache_dir is None else Path(cache_dir) / f"ict_facekit_{_cache_key(files)}.npz"
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            return data["vertices"], data["faces"]
    first = load_mesh(files[0], expected_vertices=ICT_VERTICES)
    vertices = np.empty((len(files), ICT_VERTICES, 3), dtype=np.float32)
    vertices[0] = first.vertices * CM_TO_MM
    for k, path in enumerate(files[1:], start=1):
        vertices[k] = load_mesh(path, expected_vertices=ICT_VERTICES).vertices * CM_TO_MM
    if cache is not None:
        buffer = io.BytesIO()
        np.savez(buffer, vertices=vertices, faces=first.faces)
        atomic_write(cache, buffer.getvalue())
    return vertices, first.faces


def load_ict_facekit(root: str | os.PathLike, face_area: bool = True, n_id: int | None = None,
                     cache_dir: str | os.PathLike | None = None) -> MorphableModel:
    """Load the ICT-FaceKit light model as a :class:`MorphableModel` in millimetres.

    Args:
        root: the ICT-FaceKit folder (holding ``FaceXModel/``) or ``FaceXModel`` itself.
        face_area: keep only the face area (vertices 0..9408 and the triangles among them; 18,461
            triangles after splitting quads) instead of the whole head with eyes, teeth and mouth socket.
        n_id: use the first ``n_id`` identity modes (default: all ``identityNNN.obj`` present).
        cache_dir: if given, the parsed meshes are cached there as ``ict_facekit_<sha1>.npz`` (keyed by
            the files' paths, sizes and modification times); later loads read only the cache.

    Returns:
        MorphableModel with ``mean_shape`` = generic neutral [V, 3] mm, ``id_basis`` [n_id, V, 3],
        ``exp_basis`` [K_exp, V, 3] (ARKit names in ``exp_names``: the 53 of ``vertex_indices.json``
        then the extra OBJs in name order), ``landmark_indices`` [68], regions (face, narrow_face,
        eyes, eye_left, eye_right, brows, nose, mouth, lips, jaw, cheeks, fitting, rigid). The light
        model has no albedo: a documented substitute (:func:`~facegen.morphable.base.substitute_albedo`,
        K_alb = 4) is attached.

    Raises:
        DatasetLayoutError: missing folder, ``vertex_indices.json`` or a listed blendshape OBJ, or
            ``n_id`` larger than the identity modes present (names the path).
        MeshFormatError: an OBJ is unreadable or has not 26,719 vertices (names the file).
    """
    folder = _model_folder(root)
    meta = _read_indices(folder)
    identity_files = sorted(folder.glob("identity[0-9][0-9][0-9].obj"))
    if n_id is not None:
        if n_id > len(identity_files):
            raise DatasetLayoutError(f"{folder}: n_id={n_id} but only {len(identity_files)} identityNNN.obj files")
        identity_files = identity_files[:n_id]
    listed = list(meta["expressions"])
    missing = [name for name in listed if not (folder / f"{name}.obj").is_file()]
    if missing:
        raise DatasetLayoutError(f"{folder}: blendshapes listed in vertex_indices.json are missing: "
                                 f"{', '.join(name + '.obj' for name in missing[:5])}")
    known = set(listed) | {path.stem for path in identity_files} | {"generic_neutral_mesh"}
    extras = sorted(path.stem for path in folder.glob("*.obj")
                    if path.stem not in known and not path.stem.startswith("identity"))
    exp_names = listed + extras
    files = [folder / "generic_neutral_mesh.obj", *identity_files, *(folder / f"{n}.obj" for n in exp_names)]
    vertices, faces = _load_meshes(files, cache_dir)
    neutral = vertices[0]
    deltas = vertices[1:] - neutral
    landmarks = np.asarray(meta["idx_to_landmark_verts"], dtype=np.int64)
    regions = regions_from_landmarks(neutral, landmarks, candidates=np.arange(FACE_AREA_VERTICES))
    regions["narrow_face"] = np.arange(NARROW_FACE_VERTICES)
    for name, key in (("fitting", "idx_to_fitting_verts"), ("rigid", "idx_to_rigid_verts")):
        if key in meta:
            regions[name] = np.asarray(meta[key], dtype=np.int64)
    albedo_mean, albedo_basis = substitute_albedo(ICT_VERTICES, regions)
    model = MorphableModel(neutral, faces, deltas[:len(identity_files)], deltas[len(identity_files):], exp_names,
                           albedo_mean, albedo_basis, landmarks, regions, name="ict_facekit")
    return model.crop(np.arange(FACE_AREA_VERTICES)) if face_area else model

