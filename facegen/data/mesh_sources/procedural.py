"""The embedded default mesh data: identities x FaceScape expressions of the procedural face.

Meshes come from :class:`facegen.morphable.ProceduralFaceModel` (no files, deterministic from the
seeds, generated in seconds): ``n_identities`` random identities (coefficients ``N(0, 1)``) each
performing every expression of the model's ``expression_presets`` that has a FaceScape name, in
FaceScape order with ``neutral`` first, ``samples_per_expression`` times with a per-sample intensity
jitter and coefficient noise (see :func:`facegen.data.mesh_sources.sample_morphable`) so every
class has within-class variation.

Split: whole identities (``split_by="identity"``), so val and test identities are never seen in
training; expression transfer is evaluated on unseen faces.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import torch

from facegen.data.mesh_sources import Allocator, assign_splits, sample_morphable, split_groups
from facegen.errors import DatasetLayoutError


def expression_table(presets: dict[str, torch.Tensor], k_exp: int) -> dict[str, torch.Tensor]:
    """The model's presets with FaceScape names, in FaceScape order, ``neutral`` (zeros) first.

    Raises:
        DatasetLayoutError: fewer than 2 FaceScape expressions among the presets.
    """
    from facegen.morphable import FACESCAPE_EXPRESSIONS

    table = {"neutral": torch.zeros(k_exp)}
    table.update({name: presets[name] for name in FACESCAPE_EXPRESSIONS[1:] if name in presets})
    if len(table) < 2:
        raise DatasetLayoutError(
            f"ProceduralFaceModel.expression_presets {sorted(presets)} has no FaceScape expression names "
            f"(expected names from {list(FACESCAPE_EXPRESSIONS)})"
        )
    return table


def source_files(root=None, **_options) -> list[Path]:
    """The procedural face model's source file: editing it invalidates cached collections."""
    from facegen.morphable import ProceduralFaceModel

    return [Path(inspect.getsourcefile(ProceduralFaceModel))]


def build(
    root=None,
    *,
    allocate: Allocator,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_by: str = "identity",
    n_identities: int = 64,
    samples_per_expression: int = 2,
    intensity_jitter: float = 0.2,
    coeff_noise: float = 0.03,
    id_scale: float = 1.0,
    model_seed: int = 0,
):
    """Sample the procedural face into a :class:`~facegen.data.meshes.MeshCollection` (mm).

    Args:
        root: unused (must be ``None``: the procedural face has no files).
        allocate: ``(n, v) -> [n, v, 3] float32`` output array.
        seed: identity/expression sampling seed and split seed.
        val_fraction, test_fraction, split_by: the split (whole identities by default).
        n_identities, samples_per_expression, intensity_jitter, coeff_noise, id_scale: see
            :func:`facegen.data.mesh_sources.sample_morphable`.
        model_seed: seed of :class:`facegen.morphable.ProceduralFaceModel` (the face model itself).

    Returns:
        ``N = n_identities * n_expressions * samples_per_expression`` meshes; identity names
        ``id_000...``; template = the model's mean neutral face.

    Raises:
        DatasetLayoutError: ``root`` is given, or the model has no FaceScape expression presets.
    """
    from facegen.data.meshes import MeshCollection
    from facegen.morphable import ProceduralFaceModel

    if root is not None:
        raise DatasetLayoutError(f"data.root={root}: the procedural source reads no files; set data.root=null")
    model = ProceduralFaceModel(seed=model_seed)
    table = expression_table(model.expression_presets, model.n_exp)
    vertices, identity, expression = sample_morphable(
        model, table, n_identities, samples_per_expression, intensity_jitter, coeff_noise, id_scale, seed, allocate
    )
    split = assign_splits(split_groups(identity, expression, split_by), val_fraction, test_fraction, seed)
    return MeshCollection(
        vertices=vertices,
        identity=identity,
        expression=expression,
        identity_names=[f"id_{i:03d}" for i in range(n_identities)],
        expression_names=list(table),
        faces=model.faces.numpy().astype("int64"),
        template=model.mean_shape.numpy().astype("float32"),
        split=split,
    )
