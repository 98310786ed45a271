"""FaceScape topologically uniformed (TU) models (Yang et al. 2020), as used by FaceTuneGAN.

Layout: ``<root>/<id>/models_reg/<k>_<expression>.obj`` with ``k = 1..20`` and the 20 FaceScape
expressions in FaceScape order (:data:`facegen.morphable.FACESCAPE_EXPRESSIONS`, ``1_neutral``,
``2_smile``, ..., ``20_brow_lower``); millimetres. Subjects are read in natural order of their
folder names (``1, 2, ..., 10``); an expression file a subject lacks is skipped (logged).
FaceTuneGAN (Olivier et al. 2023, section 4.1) discards 40 of the 847 subjects and tests on
10 % of the rest: ``discard`` takes those ids, and the default split holds out 10 % of the
subjects (``split_by="identity"``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facegen.data.collection import MeshCollection
from facegen.data.mesh_sources import (
    Allocator,
    assign_splits,
    reference_topology,
    split_groups,
)
from facegen.errors import DatasetLayoutError
from facegen.geometry import load_mesh
from facegen.geometry.io import check_topology
from facegen.morphable import FACESCAPE_EXPRESSIONS

log = logging.getLogger(__name__)

LAYOUT = "<root>/<id>/models_reg/<k>_<expression>.obj, k = 1..20 in FaceScape order (1_neutral.obj ... 20_brow_lower.obj), mm"


def _natural_key(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdigit() else (1, name)


def _subjects(root, discard: Sequence) -> list[Path]:
    if root is None or not Path(root).is_dir():
        raise DatasetLayoutError(f"FaceScape root {root} not found; expected layout {LAYOUT}")
    dropped = {str(d) for d in discard}
    subjects = [p for p in Path(root).iterdir() if (p / "models_reg").is_dir() and p.name not in dropped]
    if not subjects:
        raise DatasetLayoutError(f"{root}: no <id>/models_reg folders; expected layout {LAYOUT}")
    return sorted(subjects, key=lambda p: _natural_key(p.name))


def _files(subjects: list[Path]) -> tuple[list[tuple[int, int, Path]], list[Path]]:
    """``(subject_index, expression_index, path)`` of every existing TU model, and the missing paths."""
    found, missing = [], []
    for s, subject in enumerate(subjects):
        for k, name in enumerate(FACESCAPE_EXPRESSIONS):
            path = subject / "models_reg" / f"{k + 1}_{name}.obj"
            if path.is_file():
                found.append((s, k, path))
            else:
                missing.append(path)
    return found, missing


def source_files(root, discard: Sequence = (), **_options) -> list[Path]:
    """Every TU model file that will be read."""
    return [path for _, _, path in _files(_subjects(root, discard))[0]]


def build(
    root,
    *,
    allocate: Allocator,
    seed: int = 0,
    val_fraction: float = 0.05,
    test_fraction: float = 0.1,
    split_by: str = "identity",
    discard: Sequence = (),
    expected_vertices: int | None = None,
):
    """Read FaceScape TU models into a :class:`~facegen.data.meshes.MeshCollection` (mm).

    Args:
        root: FaceScape TU folder (layout :data:`LAYOUT`).
        allocate: ``(n, v) -> [n, v, 3] float32`` output array.
        seed, val_fraction, test_fraction, split_by: the split (whole subjects by default).
        discard: subject ids (folder names) to leave out.
        expected_vertices: vertex count of every model; default: the count most files share
            (:func:`~facegen.data.mesh_sources.reference_topology`), never just the first file's.

    Returns:
        Collection with labels ``FACESCAPE_EXPRESSIONS`` (``neutral`` first), identity names = the
        subject folder names, template = mean of the neutral models.

    Raises:
        DatasetLayoutError: missing root or no ``<id>/models_reg`` folders.
        MeshFormatError: an unreadable model, NaN, or a vertex count or faces (a truncated OBJ, another
            topology) differing from ``expected_vertices`` / the majority's, naming the file.
    """
    subjects = _subjects(root, discard)
    files, missing = _files(subjects)
    if missing:
        log.warning("FaceScape: %d expected models missing, skipped (first: %s)", len(missing), missing[0])
    if not files:
        raise DatasetLayoutError(f"{root}: no <k>_<expression>.obj models; expected layout {LAYOUT}")
    topology = reference_topology([path for _, _, path in files], expected_vertices)
    vertices = allocate(len(files), topology.num_vertices)
    for row, (_, _, path) in enumerate(files):
        mesh = load_mesh(path, topology.num_vertices)
        check_topology(path, mesh.faces, topology.faces, topology.source)
        vertices[row] = mesh.vertices
    identity = np.array([s for s, _, _ in files], dtype=np.int64)
    expression = np.array([k for _, k, _ in files], dtype=np.int64)
    neutral = np.flatnonzero(expression == 0)
    template = np.asarray(vertices[neutral] if len(neutral) else vertices[:], dtype=np.float64).mean(axis=0)
    split = assign_splits(split_groups(identity, expression, split_by), val_fraction, test_fraction, seed)
    log.info("FaceScape: %d models of %d subjects from %s", len(files), len(subjects), root)
    return MeshCollection(
        vertices=vertices,
        identity=identity,
        expression=expression,
        identity_names=[s.name for s in subjects],
        expression_names=list(FACESCAPE_EXPRESSIONS),
        faces=topology.faces,
        template=template.astype(np.float32),
        split=split,
    )
