"""FaceTuneGAN evaluation protocols (Olivier et al. 2023, sec. 4.3), in millimetres.

Tables shaped like the paper's:
- Table 1 ``reconstruction``: AVD between a mesh and its reconstruction (eq. 11), mean/std/median;
- Table 2 ``identity_decomposition``: spread of one subject's meshes neutralised with another
  subject's neutral style (eq. 12), mean/median over subjects;
- Table 3 ``neutralisation``: ``AVD(x_{c,neutral}, Dec(E_c(x_{c,s}), E_s(x_{c',neutral})))`` (eq. 13);
- Table 4 ``expression_transfer``: ``AVD(x_{c,s}, Dec(E_c(x_{c,neutral}), E_s(x_{c',s})))`` (eq. 14),
  per expression and over all triplets.

Tables 3 and 4 also report deformation transfer (Sumner & Popovic 2004) on the same triplets, the
paper's blendshape-transfer baseline: transfer applies the source subject's deformation
``x_{c',neutral} -> x_{c',s}`` to ``x_{c,neutral}``; neutralisation applies the reverse deformation
``x_{c',s} -> x_{c',neutral}`` to ``x_{c,s}``. (FaceTuneGAN neutralises from ``x_{c',neutral}``
alone; deformation transfer needs a source pair, so it also sees ``x_{c',s}``.)

The evaluated ``module`` is anything with ``reconstruct(x_mm) -> mm`` and ``translate(content_mm, style_mm) -> mm``
on ``[B, V, 3]`` tensors (see :class:`~facegen.models.facetunegan.FaceTuneGAN`). Where a subject has
several meshes of one expression (CoMA frame windows), one of them, drawn with ``seed``, stands for it.

No silent partial evaluation: :func:`evaluate_facetunegan` always returns the four tables. One whose protocol
has no valid input on the split (one identity, no neutral meshes, no shared expression) is the single row
``{"status": "not computed", "reason": "..."}`` (:func:`not_computed`) and a logged warning, so the run's
``metrics/`` folder holds ``<split>_<table>.md`` with the reason instead of no file.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facegen.errors import FacegenError
from facegen.geometry import deformation_transfer
from facegen.metrics.mesh import avd, draw_triplets, error_stats, per_vertex_std
from facegen.reporting import write_table
from facegen.shapes import assert_shape

log = logging.getLogger(__name__)

MODEL = "FaceTuneGAN"
BASELINE = "Deformation transfer"
NOT_COMPUTED = "not computed"
TABLES = ("reconstruction", "identity_decomposition", "neutralisation", "expression_transfer")


def not_computed(reason: str) -> list[dict[str, Any]]:
    """The rows of a table that could not be computed: ``[{"status": "not computed", "reason": reason}]``."""
    return [{"status": NOT_COMPUTED, "reason": reason}]


def skipped_tables(tables: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """``{table name: reason}`` of the tables made by :func:`not_computed`."""
    return {name: rows[0]["reason"] for name, rows in tables.items()
            if rows and rows[0].get("status") == NOT_COMPUTED}


def _triplet_reason(collection, split: str, n_triplets: int, neutral: int = 0) -> str:
    """Why ``draw_triplets`` found no ``(c, c', s)`` triplet on ``collection``."""
    if n_triplets <= 0:
        return f"n_triplets = {n_triplets} (model.evaluation.eval_triplets)"
    identity, expression = np.asarray(collection.identity), np.asarray(collection.expression)
    n_ids = len(np.unique(identity))
    n_neutral = len(np.unique(identity[expression == neutral]))
    n_styles = len(np.unique(expression[expression != neutral]))
    return (f"needs two identities that both have a neutral mesh and share a non-neutral expression; the {split} "
            f"split has {n_ids} identities ({n_neutral} with a neutral mesh) and {n_styles} non-neutral expression "
            "labels")


def _device(module) -> torch.device:
    if isinstance(module, torch.nn.Module):
        return next(module.parameters()).device
    return torch.device("cpu")


def _batched(fn: Callable[..., torch.Tensor], module, *arrays: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Apply ``fn`` to mm arrays ``[N, V, 3]`` in batches on the module's device; returns ``[N, V, 3]`` float32 mm."""
    device, outputs = _device(module), []
    for start in range(0, len(arrays[0]), batch_size):
        chunk = [torch.as_tensor(np.array(a[start:start + batch_size], dtype=np.float32), device=device)
                 for a in arrays]
        with torch.no_grad():
            outputs.append(fn(*chunk).float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, *np.shape(arrays[0])[1:]), np.float32)


def representative_rows(collection, seed: int = 0) -> dict[tuple[int, int], int]:
    """One row of ``collection`` per ``(identity, expression)`` pair, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    keys = np.stack([np.asarray(collection.identity), np.asarray(collection.expression)], axis=1)
    rows: dict[tuple[int, int], list[int]] = {}
    for row, (c, s) in enumerate(keys.tolist()):
        rows.setdefault((c, s), []).append(row)
    return {key: int(rng.choice(candidates)) for key, candidates in sorted(rows.items())}


def triplet_meshes(collection, triplets, seed: int = 0, neutral: int = 0) -> dict[str, np.ndarray]:
    """The four meshes of each triplet ``(c, c', s)``, ``[n, V, 3]`` float32 mm each.

    Keys: ``content_neutral`` (``x_{c,neutral}``), ``content_styled`` (``x_{c,s}``),
    ``source_neutral`` (``x_{c',neutral}``), ``source_styled`` (``x_{c',s}``); plus ``expression [n]``.
    """
    rows = representative_rows(collection, seed)
    picks = {
        "content_neutral": [rows[(c, neutral)] for c, _, _ in triplets],
        "content_styled": [rows[(c, s)] for c, _, s in triplets],
        "source_neutral": [rows[(cp, neutral)] for _, cp, _ in triplets],
        "source_styled": [rows[(cp, s)] for _, cp, s in triplets],
    }
    meshes = {name: np.asarray(collection.vertices[np.asarray(r, dtype=np.int64)], dtype=np.float32)
              for name, r in picks.items()}
    meshes["expression"] = np.asarray([s for _, _, s in triplets], dtype=np.int64)
    return meshes


def transfer_errors(module, meshes: dict[str, np.ndarray], batch_size: int = 16) -> np.ndarray:
    """Expression transfer error of each triplet (eq. 14): ``AVD(x_{c,s}, Dec(E_c(x_{c,neutral}), E_s(x_{c',s})))``.

    Args:
        module: model with ``translate`` (mm).
        meshes: the triplets' meshes from :func:`triplet_meshes`.
    Returns:
        ``[n]`` float64, mm.
    """
    output = _batched(module.translate, module, meshes["content_neutral"], meshes["source_styled"],
                      batch_size=batch_size)
    return avd(output, meshes["content_styled"])


def _stats_row(name: str, errors) -> dict[str, Any]:
    stats = error_stats(errors)
    return {"model": name, "mean_mm": stats["mean"], "std_mm": stats["std"], "median_mm": stats["median"],
            "n": int(np.size(errors))}


def identity_decomposition_sigmas(module, collection, seed: int = 0, neutral: int = 0,
                                  batch_size: int = 16) -> np.ndarray:
    """``sigma_c`` of eq. (12) for every content class ``c`` that has another class with a neutral mesh.

    For each ``c`` a random other class ``c'`` is drawn (``seed``); all of ``c``'s meshes in the
    collection are translated to the style of ``x_{c',neutral}``, and ``sigma_c`` is the mean over
    vertices of their spread around their mean mesh (:func:`facegen.metrics.mesh.per_vertex_std`).

    Returns:
        ``[C']`` float64 mm (empty when fewer than two classes have a neutral mesh).
    """
    rng = np.random.default_rng(seed)
    rows = representative_rows(collection, seed)
    identity = np.asarray(collection.identity)
    with_neutral = sorted(c for c, s in rows if s == neutral)
    sigmas = []
    for c in np.unique(identity).tolist():
        others = [o for o in with_neutral if o != c]
        if not others:
            continue
        style = np.asarray(collection.vertices[rows[(int(rng.choice(others)), neutral)]], dtype=np.float32)
        content = np.asarray(collection.vertices[np.flatnonzero(identity == c)], dtype=np.float32)
        outputs = _batched(module.translate, module, content, np.broadcast_to(style, content.shape),
                           batch_size=batch_size)
        sigmas.append(float(per_vertex_std(outputs).mean()))
    return np.asarray(sigmas, dtype=np.float64)


def evaluate_facetunegan(module, datamodule, split: str = "test", n_triplets: int = 200, seed: int = 0,
                         batch_size: int = 16, baseline: bool = True) -> dict[str, list[dict[str, Any]]]:
    """All FaceTuneGAN evaluation tables on one split of a :class:`facegen.data.meshes.MeshDataModule`.

    Args:
        module: a FaceTuneGAN (or any object with ``reconstruct``/``translate`` in mm).
        datamodule: set-up datamodule; ``datamodule.collection_for(split)`` gives the meshes (mm).
        split: ``"train"``, ``"val"`` or ``"test"``.
        n_triplets: number of ``(c, c', s)`` triplets for Tables 3-4 (all valid ones if fewer exist).
        seed: seed of the triplets, of the ``c'`` draws and of the representative meshes.
        batch_size: meshes per forward pass.
        baseline: also run deformation transfer on the triplets (a sparse solve per triplet).

    Returns:
        ``{"reconstruction", "identity_decomposition", "neutralisation", "expression_transfer"}`` (always all
        four), each a list of row dicts (errors in mm) usable by :func:`write_tables` or
        ``facegen.reporting.log_table``. A table whose protocol has no valid input on ``split`` (e.g. one
        subject only: Tables 2-4) is :func:`not_computed` with the reason, and a warning is logged.

    Raises:
        FacegenError: the split's vertices are not ``[N, V, 3]``.
    """
    collection = datamodule.collection_for(split)
    assert_shape(collection.vertices, ["N", "V", 3], f"{split} split vertices", error=FacegenError, hint="mm")
    tables = _evaluate(module, collection, split, n_triplets, seed, batch_size, baseline)
    for name, reason in skipped_tables(tables).items():
        log.warning("FaceTuneGAN evaluation on the %s split: table %r not computed: %s", split, name, reason)
    return tables


def _evaluate(module, collection, split: str, n_triplets: int, seed: int, batch_size: int,
              baseline: bool) -> dict[str, list[dict[str, Any]]]:
    """The tables of :func:`evaluate_facetunegan` (without the warnings)."""
    faces = np.asarray(collection.faces)
    vertices = np.asarray(collection.vertices, dtype=np.float32)
    tables: dict[str, list[dict[str, Any]]] = {}

    reconstructions = _batched(module.reconstruct, module, vertices, batch_size=batch_size)
    tables["reconstruction"] = ([_stats_row(MODEL, avd(reconstructions, vertices))] if len(vertices)
                                else not_computed(f"the {split} split has no meshes"))

    sigmas = identity_decomposition_sigmas(module, collection, seed, batch_size=batch_size)
    if len(sigmas):
        tables["identity_decomposition"] = [_stats_row(MODEL, sigmas)]
    else:
        identity, expression = np.asarray(collection.identity), np.asarray(collection.expression)
        tables["identity_decomposition"] = not_computed(
            f"needs two identities with a neutral mesh (eq. 12 neutralises with another subject's neutral style); "
            f"the {split} split has {len(np.unique(identity))} identities, "
            f"{len(np.unique(identity[expression == 0]))} with a neutral mesh")

    triplets = draw_triplets(collection.identity, collection.expression, n_triplets, seed=seed)
    if not triplets:
        reason = _triplet_reason(collection, split, n_triplets)
        tables["neutralisation"], tables["expression_transfer"] = not_computed(reason), not_computed(reason)
        return tables
    # group triplets by target subject so deformation transfer reuses its factorisation
    triplets = sorted(triplets)
    m = triplet_meshes(collection, triplets, seed)
    neutralised = _batched(module.translate, module, m["content_styled"], m["source_neutral"], batch_size=batch_size)
    errors = {"neutralisation": avd(neutralised, m["content_neutral"]),
              "transfer": transfer_errors(module, m, batch_size)}
    if baseline:
        dt_neutralised = np.stack([deformation_transfer(m["source_styled"][i], m["source_neutral"][i],
                                                        m["content_styled"][i], faces) for i in range(len(triplets))])
        dt_transferred = np.stack([deformation_transfer(m["source_neutral"][i], m["source_styled"][i],
                                                        m["content_neutral"][i], faces) for i in range(len(triplets))])
        errors["neutralisation_dt"] = avd(dt_neutralised, m["content_neutral"])
        errors["transfer_dt"] = avd(dt_transferred, m["content_styled"])

    tables["neutralisation"] = [_stats_row(MODEL, errors["neutralisation"])]
    if baseline:
        tables["neutralisation"].append(_stats_row(BASELINE, errors["neutralisation_dt"]))

    names = list(collection.expression_names)
    rows = []
    for s in sorted(set(m["expression"].tolist())):
        rows.append(_transfer_row(names[s], m["expression"] == s, errors, baseline))
    rows.append(_transfer_row("all", np.ones(len(triplets), dtype=bool), errors, baseline))
    tables["expression_transfer"] = rows
    return tables


def _transfer_row(expression: str, mask: np.ndarray, errors: dict[str, np.ndarray], baseline: bool) -> dict[str, Any]:
    row = {"expression": expression, "facetunegan_mm": float(errors["transfer"][mask].mean())}
    if baseline:
        row["deformation_transfer_mm"] = float(errors["transfer_dt"][mask].mean())
    row["n"] = int(mask.sum())
    return row


def write_tables(tables: dict[str, list[dict[str, Any]]], out_dir: str | Path) -> list[Path]:
    """Write each non-empty table (a :func:`not_computed` one too, with its reason) as
    ``<out_dir>/facetunegan_<name>.csv`` and ``.md``; returns the paths."""
    paths: list[Path] = []
    for name, rows in tables.items():
        if rows:
            paths.extend(write_table(rows, Path(out_dir) / f"facetunegan_{name}"))
    return paths


def log_rows(tables: dict[str, list[dict[str, Any]]], prefix: str = "test") -> dict[str, float]:
    """Flat scalar metrics for a logger, e.g. ``test/rec_error_mm``, ``test/transfer_error_mm``; a table that
    was not computed gives none (see :func:`skipped_tables`)."""
    metrics: dict[str, float] = {}
    scalars = {"reconstruction": "rec_error_mm", "identity_decomposition": "id_decomp_error_mm",
               "neutralisation": "neutralisation_error_mm"}
    skipped = skipped_tables(tables)
    tables = {name: rows for name, rows in tables.items() if name not in skipped}
    for table, key in scalars.items():
        for row in tables.get(table, []):
            suffix = "" if row["model"] == MODEL else "_deformation_transfer"
            metrics[f"{prefix}/{key}{suffix}"] = row["mean_mm"]
    for row in tables.get("expression_transfer", []):
        if row["expression"] == "all":
            metrics[f"{prefix}/transfer_error_mm"] = row["facetunegan_mm"]
            if "deformation_transfer_mm" in row:
                metrics[f"{prefix}/transfer_error_mm_deformation_transfer"] = row["deformation_transfer_mm"]
    return metrics
