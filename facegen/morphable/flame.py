"""FLAME (Li et al., "Learning a model of facial shape and expression from 4D scans", SIGGRAPH Asia 2017).

Only the linear part is used: ``v_template`` [5023, 3] and ``shapedirs`` [5023, 3, 300 + 100]
(identity ``betas`` then expression ``psi``, in standard deviations as FLAME's ``lbs``); pose blend
shapes, joints and skinning (``posedirs``, ``J_regressor``, ``weights``, ``kintree_table``) are
ignored, so jaw, neck and eyeball rotations are not modelled. Units: metres in the file, mm here.

The official ``generic_model.pkl`` stores chumpy ``Ch`` arrays. It is read with facegen's restricted
unpickler (:func:`facegen.checkpoints.load_foreign`) with every ``chumpy.*`` class standing in as
:class:`_ChumpyArray` (keeping the array in its state key ``x``); every global outside the allow-list is
refused, so no code from the file runs and chumpy need not be installed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facegen.checkpoints import load_foreign
from facegen.errors import CheckpointError, DatasetLayoutError
from facegen.morphable.base import ModelLayoutError, MorphableModel, substitute_albedo
from facegen.shapes import assert_shape

M_TO_MM = 1000.0


class _ChumpyArray:
    """Stand-in for ``chumpy.Ch``: keeps the pickled state; ``.array`` is the wrapped ndarray."""

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"x": state}

    @property
    def array(self):
        return self.state.get("x")


class _SparseHolder(_ChumpyArray):
    """Stand-in for ``scipy.sparse`` matrices (``J_regressor``), which facegen does not use."""


def _array(value, path: Path, key: str) -> np.ndarray:
    if isinstance(value, _ChumpyArray):
        value = value.array
    if not isinstance(value, np.ndarray):
        raise ModelLayoutError(f"{path}: key {key!r} is not an array (a derived chumpy expression?); "
                               "expected a plain Ch/ndarray")
    return value


def _read(path: Path) -> dict:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return dict(data)
    try:
        data = load_foreign(path, stand_ins={"chumpy": _ChumpyArray, "scipy.sparse": _SparseHolder},
                            encoding="latin1")
    except CheckpointError as error:
        raise ModelLayoutError(f"not a readable FLAME pickle: {error}") from error
    if not isinstance(data, dict):
        raise ModelLayoutError(f"{path}: a FLAME pickle holds a dict, found {type(data).__name__}")
    return data


def load_flame(path: str | os.PathLike, n_shape: int = 300, n_exp: int = 100) -> MorphableModel:
    """Load a FLAME model (``.pkl`` as distributed, or ``.npz`` with the same keys) in millimetres.

    Args:
        path: ``generic_model.pkl`` / ``flame2023.pkl`` / an ``.npz`` with ``v_template``, ``shapedirs``, ``f``.
        n_shape: identity components (the first ``n_shape`` of ``shapedirs``, FLAME: 300).
        n_exp: expression components (the ``n_exp`` after the first 300, FLAME: 100).

    Returns:
        MorphableModel (V = 5023 for FLAME) with ``id_basis`` [n_shape, V, 3] and ``exp_basis``
        [n_exp', V, 3] (``n_exp' = min(n_exp, K - 300)``), no landmarks, region ``face`` = all vertices,
        and the substitute albedo of :func:`~facegen.morphable.base.substitute_albedo` (FLAME's texture
        space is a separate download).

    Raises:
        DatasetLayoutError: the file does not exist.
        ModelLayoutError: unreadable pickle, a forbidden global in it, missing key or wrong shape (names key).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetLayoutError(f"{path}: FLAME model file not found (expected generic_model.pkl or .npz)")
    data = _read(path)
    for key in ("v_template", "shapedirs", "f"):
        if key not in data:
            raise ModelLayoutError(f"{path}: missing key {key!r}; a FLAME model has v_template, shapedirs, f")
    template = _array(data["v_template"], path, "v_template").astype(np.float64)
    shapedirs = _array(data["shapedirs"], path, "shapedirs").astype(np.float64)
    faces = _array(data["f"], path, "f").astype(np.int64)
    assert_shape(template, ["V", 3], f"{path}: v_template", error=ModelLayoutError, hint="metres")
    V = template.shape[0]
    assert_shape(shapedirs, [V, 3, "K"], f"{path}: shapedirs", error=ModelLayoutError,
                 hint="one [V, 3] offset per shape/expression component, V of v_template")
    n_identity = min(n_shape, shapedirs.shape[2], 300)
    expression = shapedirs[:, :, 300:300 + n_exp]
    mean, basis = substitute_albedo(V)
    return MorphableModel(template * M_TO_MM, faces, shapedirs[:, :, :n_identity].transpose(2, 0, 1) * M_TO_MM,
                          expression.transpose(2, 0, 1) * M_TO_MM, [f"psi_{k:03d}" for k in range(expression.shape[2])],
                          mean, basis, None, {"face": np.arange(V)}, name=f"flame({path.name})")
