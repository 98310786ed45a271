"""Mesh metrics of FaceTuneGAN (Olivier et al.): average vertex distance and the evaluation protocols.

All functions are pure, accept numpy arrays or torch tensors, and work in the meshes' unit
(millimetres inside facegen). Equation numbers refer to the FaceTuneGAN paper.
"""
from __future__ import annotations

import numpy as np
import torch

from facegen.errors import MeshFormatError
from facegen.shapes import assert_shape


def per_vertex_error(x, y):
    """Euclidean distance between corresponding vertices.

    Args:
        x, y: ``[..., V, 3]`` meshes with the same topology (numpy or torch; torch if either is).

    Returns:
        ``[..., V]`` distances ``||x_i - y_i||_2`` (mm for mm input), same library as the input.

    Raises:
        MeshFormatError: shapes differ or the last dimension is not 3.
    """
    assert_shape(x, [*[None] * max(len(x.shape) - 2, 0), "V", 3], "x", error=MeshFormatError,
                 hint="meshes [..., V, 3]")
    assert_shape(y, list(x.shape), "y", error=MeshFormatError, hint="the shape of x (same topology)")
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        return torch.linalg.vector_norm(x - y.to(x), dim=-1)
    return np.linalg.norm(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64), axis=-1)


def avd(x, y):
    """Average vertex distance, FaceTuneGAN eq. 1: ``AVD(x, y) = (1/V) sum_i ||x_i - y_i||_2``.

    Args:
        x, y: ``[..., V, 3]`` meshes with the same topology (numpy or torch).

    Returns:
        ``[...]`` AVD per mesh (leading batch dimensions kept), in the input unit.

    Raises:
        MeshFormatError: shapes differ or the last dimension is not 3.
    """
    return per_vertex_error(x, y).mean(-1)


def error_stats(errors) -> dict[str, float]:
    """Summary of per-sample errors as reported in FaceTuneGAN Table 3 ("mean ± std (median)").

    Args:
        errors: any-shaped array or tensor of errors (flattened), e.g. AVDs in mm.

    Returns:
        ``{"mean", "std", "median"}`` as floats; ``std`` is the population standard deviation
        (``ddof=0``) and ``median`` averages the two middle values for an even count.

    Raises:
        ValueError: ``errors`` is empty.
    """
    if isinstance(errors, torch.Tensor):
        errors = errors.detach().cpu().numpy()
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size == 0:
        raise ValueError("error_stats needs at least one error value, got an empty array")
    return {"mean": float(errors.mean()), "std": float(errors.std()), "median": float(np.median(errors))}


def per_vertex_std(meshes):
    """Per-vertex spread of meshes around their mean (the error map of FaceTuneGAN Figure 6).

    ``sqrt(mean_s ||x_{s,i} - mean_s x_{s,i}||^2)`` for every vertex ``i``, i.e. the root mean
    squared distance of the ``S`` outputs to their mean mesh (population, ``ddof=0``).

    Args:
        meshes: ``[S, V, 3]`` (numpy or torch).

    Returns:
        ``[V]`` in the input unit, same library as the input.

    Raises:
        MeshFormatError: ``meshes`` is not ``[S, V, 3]``.
    """
    assert_shape(meshes, ["S", "V", 3], "meshes", error=MeshFormatError)
    if isinstance(meshes, torch.Tensor):
        return (meshes - meshes.mean(0)).square().sum(-1).mean(0).sqrt()
    meshes = np.asarray(meshes, dtype=np.float64)
    return np.sqrt(((meshes - meshes.mean(0)) ** 2).sum(-1).mean(0))


def identity_decomposition_error(outputs) -> float:
    """Identity decomposition error, FaceTuneGAN eq. 12: ``E = (1/|C|) sum_c sigma_c``.

    ``outputs[c]`` holds ``Dec(Ec(x_{c,s}), Es(x_{c',neutral}))`` for every style ``s`` of
    content class ``c`` (one other class ``c'`` per ``c``). The paper defines ``sigma_c`` as the
    standard deviation "using AVD" of these meshes, and Figure 6 maps it per vertex "relative to
    the mean of the outputs". We read this as: per vertex, the root mean squared distance of
    the outputs to their mean mesh (:func:`per_vertex_std`), averaged over vertices like AVD.

    Args:
        outputs: list of ``[S_c, V, 3]`` arrays or tensors (``S_c >= 1``), one per content class.

    Returns:
        The mean of ``sigma_c`` over classes, in the input unit (mm).

    Raises:
        MeshFormatError: an entry is not ``[S, V, 3]``; ValueError: ``outputs`` is empty.
    """
    if len(outputs) == 0:
        raise ValueError("identity_decomposition_error needs outputs for at least one content class")
    sigmas = [float(per_vertex_std(meshes).mean()) for meshes in outputs]
    return float(np.mean(sigmas))


def draw_triplets(identity, expression, n: int, seed: int, neutral: int = 0) -> list[tuple[int, int, int]]:
    """Random evaluation triplets ``(c, c', s)`` of FaceTuneGAN eqs. 13-14, drawn without replacement.

    ``c != c'`` are content (identity) classes and ``s != neutral`` a style (expression) class,
    restricted to triplets whose four meshes exist: ``x_{c,s}, x_{c,neutral}, x_{c',s},
    x_{c',neutral}``. Triplets are drawn uniformly among all such triplets; when fewer than
    ``n`` exist, all of them are returned (in random order).

    Args:
        identity: ``[N]`` int content class of each mesh.
        expression: ``[N]`` int style class of each mesh.
        n: number of triplets wanted.
        seed: seed of the ``numpy`` generator.
        neutral: style label of the neutral expression.

    Returns:
        ``min(n, total)`` tuples ``(c, c_prime, s)`` of int labels.

    Raises:
        facegen.errors.ShapeError (a ValueError): ``identity`` and ``expression`` differ in length.
    """
    identity = np.asarray(torch.as_tensor(identity).cpu(), dtype=np.int64).ravel()
    expression = np.asarray(torch.as_tensor(expression).cpu(), dtype=np.int64).ravel()
    assert_shape(expression, [len(identity)], "expression",
                 hint="one style label per mesh, as many as identity labels")
    has_neutral = set(identity[expression == neutral].tolist())
    styles, members = [], []
    for s in np.unique(expression[expression != neutral]).tolist():
        classes = sorted(set(identity[expression == s].tolist()) & has_neutral)
        if len(classes) >= 2:
            styles.append(s)
            members.append(classes)
    pairs = np.array([len(m) * (len(m) - 1) for m in members], dtype=np.int64)
    total = int(pairs.sum())
    if total == 0:
        return []
    rng = np.random.default_rng(seed)
    chosen = rng.choice(total, size=min(n, total), replace=False)
    ends = np.cumsum(pairs)
    triplets = []
    for k in chosen.tolist():
        block = int(np.searchsorted(ends, k, side="right"))
        offset = k - (ends[block] - pairs[block])
        classes = members[block]
        first, rest = divmod(int(offset), len(classes) - 1)
        second = rest if rest < first else rest + 1
        triplets.append((classes[first], classes[second], styles[block]))
    return triplets
