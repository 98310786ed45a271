"""Sources of 3D face meshes for :class:`facegen.data.meshes.MeshDataModule`.

Every source is a module with the same two functions:

``source_files(root, **options) -> list[Path]``
    the files the collection is built from (their sizes and mtimes key the cache; listing
    them must not read them),
``build(root, *, allocate, seed, val_fraction, test_fraction, **options) -> MeshCollection``
    reads/generates the meshes. ``allocate(n, v)`` returns a writable ``[n, v, 3] float32``
    array (in memory, or a memory map inside the cache being written) that ``build`` fills,
    so a large dataset never has to fit in memory twice.

Sources: ``procedural`` (embedded default, no files), ``ict`` (ICT-FaceKit), ``coma``
(CoMA sequences, Ranjan et al. 2018) and ``facescape`` (FaceScape TU models, Yang et al. 2020).
This package also holds the helpers the sources share: seeded group splits, sampling a
morphable model over identities x named expressions, and the reference topology that every file of a
dataset is checked against (:func:`reference_topology`).
"""
from __future__ import annotations

import hashlib
import importlib
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np
import torch

from facegen.errors import DatasetLayoutError, MeshFormatError
from facegen.geometry import load_mesh

SOURCES = ("procedural", "ict", "coma", "facescape")

Allocator = Callable[[int, int], np.ndarray]


def get_source(name: str) -> ModuleType:
    """The source module called ``name`` (one of :data:`SOURCES`).

    Raises:
        DatasetLayoutError: ``name`` is not a known source.
    """
    if name not in SOURCES:
        raise DatasetLayoutError(f"data.source={name!r}: unknown mesh source, expected one of {list(SOURCES)}")
    return importlib.import_module(f"facegen.data.mesh_sources.{name}")


def allocate_in_memory(n: int, v: int) -> np.ndarray:
    """Default allocator: ``np.empty([n, v, 3], float32)``."""
    return np.empty((n, v, 3), dtype=np.float32)


def assign_splits(groups: Sequence, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Seeded train/val/test split of whole groups (identities, sequences or single samples).

    The unique group keys are sorted first and then permuted with ``np.random.default_rng(seed)``,
    so the split depends only on the keys and the seed, never on file-system order. The first
    ``round(test_fraction * G)`` permuted groups are test, the next ``round(val_fraction * G)``
    are val, the rest train; a positive fraction always gets at least one group.

    Args:
        groups: ``[N]`` group key per sample (str or int).
        val_fraction, test_fraction: fractions of the groups, each in ``[0, 1)``.
        seed: split seed.

    Returns:
        ``[N]`` array of ``"train"``/``"val"``/``"test"`` (dtype ``<U5``).

    Raises:
        DatasetLayoutError: a fraction is outside ``[0, 1)`` or too few groups are left for training.
    """
    keys = np.asarray(groups)
    unique, inverse = np.unique(keys, return_inverse=True)  # sorted unique keys
    n_groups = len(unique)
    counts = []
    for name, fraction in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise DatasetLayoutError(f"data.{name}={fraction}: expected a fraction in [0, 1)")
        counts.append(max(1, round(fraction * n_groups)) if fraction > 0 else 0)
    n_test, n_val = counts
    if n_test + n_val >= n_groups:
        raise DatasetLayoutError(
            f"only {n_groups} split groups for test_fraction={test_fraction}, val_fraction={val_fraction}: "
            "no group left for training (use more data or smaller fractions)"
        )
    order = np.random.default_rng(seed).permutation(n_groups)
    group_split = np.full(n_groups, "train", dtype="<U5")
    group_split[order[:n_test]] = "test"
    group_split[order[n_test : n_test + n_val]] = "val"
    return group_split[inverse.reshape(-1)]


def split_groups(identity: np.ndarray, expression: np.ndarray, split_by: str) -> np.ndarray:
    """Group keys for :func:`assign_splits`.

    Args:
        identity, expression: ``[N]`` int64 labels.
        split_by: ``"identity"`` (test identities unseen in training), ``"sample"`` (every mesh
            on its own, as FaceTuneGAN's CoMA 9:1 split) or ``"identity_expression"`` (whole
            (identity, expression) groups, e.g. a CoMA frame window stays in one split).

    Raises:
        DatasetLayoutError: unknown ``split_by``.
    """
    if split_by == "identity":
        return identity
    if split_by == "sample":
        return np.arange(len(identity))
    if split_by == "identity_expression":
        return identity * (int(expression.max(initial=0)) + 1) + expression
    raise DatasetLayoutError(
        f"data.split_by={split_by!r}: expected 'identity', 'sample' or 'identity_expression'"
    )


def sample_morphable(
    model: torch.nn.Module,
    expressions: Mapping[str, torch.Tensor],
    n_identities: int,
    samples_per_expression: int,
    intensity_jitter: float,
    coeff_noise: float,
    id_scale: float,
    seed: int,
    allocate: Allocator,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Meshes of random identities x named expressions of a morphable model.

    Sample ``(i, e, s)`` uses identity coefficients ``id_scale * N(0, 1)`` (one draw per identity)
    and expression coefficients ``c = u * expressions[e] + coeff_noise * |N(0, 1)|`` with an intensity
    ``u ~ U(1 - intensity_jitter, 1 + intensity_jitter)`` per sample. The noise is non-negative
    because expression coefficients are activations (ARKit blendshape weights, rig controls in
    [0, 1]); it gives the neutral class (all-zero preset) its own within-class variation.
    Everything comes from one ``torch.Generator`` seeded with ``seed``.

    Args:
        model: a :class:`facegen.morphable.MorphableModel` (``vertices(id [B,K_id], exp [B,K_exp]) -> [B,V,3]`` mm).
        expressions: name -> ``[K_exp]`` coefficients, in label order (first = ``"neutral"``).
        n_identities, samples_per_expression: sizes; ``N = n_identities * len(expressions) * samples_per_expression``.
        allocate: returns the ``[N, V, 3] float32`` output array.

    Returns:
        ``vertices [N, V, 3] float32 mm`` (from ``allocate``), ``identity [N] int64``,
        ``expression [N] int64``; ordered identity-major, then expression, then sample.
    """
    names = list(expressions)
    presets = torch.stack([torch.as_tensor(expressions[n], dtype=torch.float32) for n in names])
    n_exp, k_exp = presets.shape
    generator = torch.Generator().manual_seed(seed)
    id_coeffs = id_scale * torch.randn(n_identities, model.n_id, generator=generator)
    identity = np.repeat(np.arange(n_identities), n_exp * samples_per_expression)
    expression = np.tile(np.repeat(np.arange(n_exp), samples_per_expression), n_identities)
    n = len(identity)
    intensity = 1.0 + intensity_jitter * (2.0 * torch.rand(n, 1, generator=generator) - 1.0)
    exp_coeffs = intensity * presets[expression] + coeff_noise * torch.randn(n, k_exp, generator=generator).abs()
    vertices = allocate(n, model.mean_shape.shape[0])
    with torch.no_grad():
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            ids = id_coeffs[torch.from_numpy(identity[start:stop])]
            vertices[start:stop] = model.vertices(ids, exp_coeffs[start:stop]).numpy()
    return vertices, identity.astype(np.int64), expression.astype(np.int64)


class Topology(NamedTuple):
    """The mesh layout every file of a dataset must have: ``num_vertices``, ``faces [F, 3] int64``, and where it
    came from (``source``, quoted in the errors)."""

    num_vertices: int
    faces: np.ndarray
    source: str


def reference_topology(paths: Sequence[str | os.PathLike], expected_vertices: int | None = None,
                       samples: int = 5) -> Topology:
    """The topology most of ``paths`` share, from up to ``samples`` files spread evenly over the list (first and
    last included), so that one bad file (truncated, another mesh) is blamed itself instead of setting the
    expectation for the good ones, whichever is read first.

    Args:
        paths: the dataset's mesh files, in reading order.
        expected_vertices: the vertex count every file must have, when the dataset knows it (CoMA: 5,023).
        samples: files read to find the majority.

    Raises:
        MeshFormatError: a sampled file is unreadable or has not ``expected_vertices`` vertices (names it), or
            no topology is shared by more than half of the sampled files (names them with their counts).
    """
    if not paths:
        raise MeshFormatError("no mesh files to take the topology from")
    picks = sorted({int(round(i)) for i in np.linspace(0, len(paths) - 1, min(samples, len(paths)))})
    meshes = {Path(paths[i]): load_mesh(paths[i], expected_vertices) for i in picks}
    keys = {path: (len(m.vertices), hashlib.sha1(m.faces.tobytes()).hexdigest()) for path, m in meshes.items()}
    (key, count), = Counter(keys.values()).most_common(1)
    if count * 2 <= len(keys):
        listing = ", ".join(f"{p} ({len(m.vertices)} vertices, {len(m.faces)} faces)" for p, m in meshes.items())
        raise MeshFormatError(f"no mesh layout shared by most of the sampled files: {listing}")
    first = next(p for p, k in keys.items() if k == key)
    return Topology(key[0], meshes[first].faces,
                    f"the layout of {count} of {len(keys)} sampled files of the dataset, e.g. {first.name}")
