"""CoMA sequences (Ranjan et al. 2018) with FaceTuneGAN's discrete expression labels.

Layout: ``<root>/FaceTalk_*/<expression>/<expression>.NNNNNN.ply`` (12 subjects x 12 sequences,
5,023 FLAME-topology vertices, metres; converted to mm here).

Labels follow FaceTuneGAN (Olivier et al. 2023, section 4.1):

- the first frame of each sequence is a ``neutral`` sample of its subject;
- the frame with the largest mean vertex distance to that first frame is the expression's apex;
  the ``window`` (10) frames before and after it (clipped to the sequence, never frame 0) are
  samples of the same label;
- ``mouth_up``, ``mouth_middle`` and ``mouth_down`` are split into ``<name>_left`` and
  ``<name>_right``: the side is the sign of the mean x-displacement (apex minus neutral) of the
  mouth region, ``+x`` being the subject's left (FLAME/CoMA frame: y up, the face looks along
  +z). The mouth region is ``mouth_region`` (vertex indices) if given, else the
  ``region_fraction`` of vertices that moved most between neutral and apex;
- a manual overrides file (YAML or JSON) replaces the automatic choice:
  ``{FaceTalk_xxx: {expression: frame | null | {frame: int, side: left|right}}}``, where ``frame``
  is the ``NNNNNN`` number of the file name and ``null`` drops the sequence (FaceTuneGAN
  verified every sequence by hand and dropped some, their Figure 11).

Labels: ``neutral`` + the expressions in ``expressions`` order with the lateral ones expanded,
16 with the defaults (the paper says 17; also splitting ``mouth_side`` would give 17).
Labels nobody performed stay in the list, so label indices do not depend on the data.
The paper splits the resulting meshes 9:1 at random (``split_by="sample"``); neighbouring frames
are then shared between train and test. ``split_by="identity_expression"`` keeps each window
in one split.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from facegen.data.collection import MeshCollection
from facegen.data.mesh_sources import (
    Allocator,
    assign_splits,
    reference_topology,
    split_groups,
)
from facegen.errors import DatasetLayoutError, MeshFormatError
from facegen.geometry import load_mesh
from facegen.geometry.io import check_topology

log = logging.getLogger(__name__)

LAYOUT = "<root>/FaceTalk_*/<expression>/<expression>.NNNNNN.ply (CoMA registered sequences, metres)"
EXPRESSIONS = (
    "bareteeth", "cheeks_in", "eyebrow", "high_smile", "lips_back", "lips_up",
    "mouth_down", "mouth_extreme", "mouth_middle", "mouth_open", "mouth_side", "mouth_up",
)
LATERAL_EXPRESSIONS = ("mouth_down", "mouth_middle", "mouth_up")
NUM_VERTICES = 5023
METRES_TO_MM = 1000.0
_FRAME = re.compile(r"\.(\d+)\.ply$")


def label_names(expressions: Sequence[str], lateral: Sequence[str]) -> list[str]:
    """``["neutral", ...]``: the expression labels with each lateral one split into ``_left``/``_right``."""
    names = ["neutral"]
    for name in expressions:
        names += [f"{name}_left", f"{name}_right"] if name in lateral else [name]
    return names


def _subjects(root: Path | None) -> list[Path]:
    if root is None or not Path(root).is_dir():
        raise DatasetLayoutError(f"CoMA root {root} not found; expected layout {LAYOUT}")
    subjects = sorted(p for p in Path(root).glob("FaceTalk_*") if p.is_dir())
    if not subjects:
        raise DatasetLayoutError(f"{root}: no FaceTalk_* subject folders; expected layout {LAYOUT}")
    return subjects


def _frames(folder: Path) -> tuple[list[int], list[Path]]:
    """Frame numbers and files of one sequence, sorted by frame number."""
    found = []
    for path in folder.glob(f"{folder.name}.*.ply"):
        match = _FRAME.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    found.sort()
    return [n for n, _ in found], [p for _, p in found]


def source_files(root, expressions: Sequence[str] = EXPRESSIONS, overrides=None, template_path=None,
                 **_options) -> list[Path]:
    """Every frame file of every sequence, plus the overrides and template files when given."""
    files = []
    for subject in _subjects(root):
        for name in expressions:
            files += _frames(subject / name)[1]
    files += [Path(p) for p in (overrides, template_path) if p is not None]
    return files


def _read_overrides(path, subjects: list[str], expressions: Sequence[str]) -> dict[tuple[str, str], object]:
    """``{(subject, expression): None | (frame, side | None)}`` from a YAML/JSON overrides file."""
    if path is None:
        return {}
    path = Path(path)
    expected = "{FaceTalk_xxx: {expression: frame_number | null | {frame: int, side: left|right}}}"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise DatasetLayoutError(f"{path}: cannot read CoMA overrides ({err}); expected {expected}") from err
    if not isinstance(data, dict):
        raise DatasetLayoutError(f"{path}: CoMA overrides must be a mapping {expected}")
    result: dict[tuple[str, str], object] = {}
    for subject, entries in data.items():
        if subject not in subjects or not isinstance(entries, dict):
            raise DatasetLayoutError(f"{path}: unknown subject {subject!r} (known: {subjects}); expected {expected}")
        for name, value in entries.items():
            if name not in expressions:
                raise DatasetLayoutError(f"{path}: {subject}: unknown expression {name!r}; expected one of {list(expressions)}")
            if value is None:
                result[subject, name] = None
            elif isinstance(value, int) and not isinstance(value, bool):
                result[subject, name] = (value, None)
            elif isinstance(value, dict) and isinstance(value.get("frame"), int) and value.get("side", "left") in ("left", "right"):
                result[subject, name] = (value["frame"], value.get("side"))
            else:
                raise DatasetLayoutError(f"{path}: {subject}/{name}: bad value {value!r}; expected {expected}")
    return result


def lateral_side(neutral: np.ndarray, apex: np.ndarray, region: np.ndarray | None, region_fraction: float) -> str:
    """``"left"`` or ``"right"``: sign of the mean x-displacement of the (mouth) region, +x = subject's left.

    Args:
        neutral, apex: ``[V, 3]`` meshes of one subject.
        region: vertex indices of the mouth, or ``None`` to use the ``region_fraction`` of vertices
            with the largest displacement.
    """
    displacement = apex - neutral
    if region is None:
        count = max(1, int(round(region_fraction * len(displacement))))
        region = np.argsort(-np.linalg.norm(displacement, axis=1), kind="stable")[:count]
    return "left" if displacement[region, 0].mean() > 0 else "right"


def build(
    root,
    *,
    allocate: Allocator,
    seed: int = 0,
    val_fraction: float = 0.0,
    test_fraction: float = 0.1,
    split_by: str = "sample",
    expressions: Sequence[str] = EXPRESSIONS,
    lateral_expressions: Sequence[str] = LATERAL_EXPRESSIONS,
    window: int = 10,
    overrides: str | Path | None = None,
    mouth_region: Sequence[int] | None = None,
    region_fraction: float = 0.05,
    expected_vertices: int = NUM_VERTICES,
    template_path: str | Path | None = None,
):
    """Read CoMA sequences into a labelled :class:`~facegen.data.meshes.MeshCollection` (mm).

    Args:
        root: folder holding ``FaceTalk_*`` subjects (layout :data:`LAYOUT`).
        allocate: ``(n, v) -> [n, v, 3] float32`` output array.
        seed, val_fraction, test_fraction, split_by: split (see :func:`assign_splits`,
            :func:`split_groups`); the paper's 9:1 random split is ``test_fraction=0.1, split_by="sample"``.
        expressions: sequence folder names to read (missing sequences are skipped).
        lateral_expressions: expressions split into ``_left``/``_right``.
        window: frames taken on each side of the apex frame.
        overrides: YAML/JSON file of manual apex frames (see module docstring).
        mouth_region, region_fraction: region whose x-displacement decides left/right.
        expected_vertices: vertex count of every frame (5,023 for CoMA).
        template_path: mesh (metres) used as ``template``, e.g. CoMA's ``template.obj``; default:
            the mean of all neutral frames.

    Raises:
        DatasetLayoutError: missing root, no ``FaceTalk_*`` folders, no sequences, bad overrides.
        MeshFormatError: an unreadable frame, NaN, or not ``expected_vertices`` vertices (names the file).
    """
    subjects = _subjects(root)
    subject_names = [s.name for s in subjects]
    names = label_names(expressions, lateral_expressions)
    manual = _read_overrides(overrides, subject_names, expressions)
    region = None if mouth_region is None else np.asarray(mouth_region, dtype=np.int64)

    sequences = []
    for subject_index, subject in enumerate(subjects):
        for name in expressions:
            numbers, files = _frames(subject / name)
            choice = manual.get((subject.name, name), (None, None))
            if files and choice is not None:
                sequences.append((subject_index, subject, name, numbers, files, choice))
    if not sequences:
        raise DatasetLayoutError(f"{root}: no sequence folders of {list(expressions)}; expected layout {LAYOUT}")
    topology = reference_topology([p for *_, files, _ in sequences for p in files], expected_vertices)
    faces = topology.faces

    chunks, identity, expression = [], [], []
    for subject_index, subject, name, numbers, files, choice in sequences:
        frames = []
        for path in files:
            mesh = load_mesh(path, expected_vertices)
            check_topology(path, mesh.faces, faces, topology.source)
            frames.append(mesh.vertices * METRES_TO_MM)
        frames = np.stack(frames).astype(np.float32)
        frame, side = choice
        if frame is None:
            apex = int(np.linalg.norm(frames - frames[0], axis=2).mean(axis=1).argmax())
        elif frame in numbers:
            apex = numbers.index(frame)
        else:
            raise DatasetLayoutError(
                f"{overrides}: {subject.name}/{name}: frame {frame} not in {subject / name} "
                f"(frames {numbers[0]}..{numbers[-1]}); expected layout {LAYOUT}"
            )
        label = name
        if name in lateral_expressions:
            side = side or lateral_side(frames[0], frames[apex], region, region_fraction)
            label = f"{name}_{side}"
        window_rows = np.arange(max(1, apex - window), min(len(frames), apex + window + 1))
        chunks += [frames[:1], frames[window_rows]]
        identity += [subject_index] * (1 + len(window_rows))
        expression += [0] + [names.index(label)] * len(window_rows)

    identity = np.asarray(identity, dtype=np.int64)
    expression = np.asarray(expression, dtype=np.int64)
    vertices = allocate(len(identity), expected_vertices)
    start = 0
    for chunk in chunks:
        vertices[start : start + len(chunk)] = chunk
        start += len(chunk)
    if template_path is None:
        template = np.asarray(vertices[expression == 0], dtype=np.float64).mean(axis=0)
    else:
        template_mesh = load_template(template_path, expected_vertices)
        if not np.array_equal(template_mesh.faces, faces):
            log.warning("CoMA template %s: its faces differ from the frames' (%s); the frames' are used",
                        template_path, topology.source)
        template = template_mesh.vertices
    split = assign_splits(split_groups(identity, expression, split_by), val_fraction, test_fraction, seed)
    log.info("CoMA: %d meshes of %d subjects from %s", len(identity), len(subjects), root)
    return MeshCollection(
        vertices=vertices,
        identity=identity,
        expression=expression,
        identity_names=subject_names,
        expression_names=names,
        faces=np.asarray(faces, dtype=np.int64),
        template=template.astype(np.float32),
        split=split,
    )


def load_template(path: str | Path, expected_vertices: int = NUM_VERTICES):
    """The CoMA/FLAME template mesh (stored in metres) in mm.

    Returns:
        :class:`facegen.geometry.Mesh` with ``vertices [V, 3] float64 mm`` and ``faces [F, 3] int64``.

    Raises:
        MeshFormatError: unreadable file or not ``expected_vertices`` vertices.
    """
    mesh = load_mesh(path, expected_vertices)
    if np.abs(mesh.vertices).max() > 10.0:
        raise MeshFormatError(f"{path}: coordinates up to {np.abs(mesh.vertices).max():.1f}, expected metres (CoMA template)")
    return type(mesh)(mesh.vertices * METRES_TO_MM, mesh.faces)
