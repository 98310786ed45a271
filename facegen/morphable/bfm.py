"""Basel Face Model 2009 (Paysan et al., AVSS 2009) and 2017 (Gerig et al., FG 2018) loaders.

BFM 2009 ``01_MorphableModel.mat`` (MATLAB v5, read with ``scipy.io.loadmat``): ``shapeMU [3V, 1]``,
``shapePC [3V, K]``, ``shapeEV [K, 1]`` (standard deviations: the BFM's ``coef2object`` computes
``MU + PC * (coef .* EV)``), ``texMU``/``texPC``/``texEV`` (colour 0..255), ``tri [F, 3]`` 1-based.
Shape units are micrometres (Deep3DFaceRecon's ``transferBFM09`` divides by 1e5 to reach its
decimetre-like scale): divided by 1000 here. No expression model.

BFM 2017 ``model2017-1_*.h5`` (statismo, read with ``h5py``): ``shape/model/{mean, pcaBasis,
pcaVariance}``, ``expression/model/...``, ``color/model/...`` (colour 0..1),
``shape/representer/cells [3, F]`` 0-based. Statismo bases are orthonormal with variances
``pcaVariance``, so a unit coefficient is ``pcaBasis * sqrt(pcaVariance)``. Units are millimetres.
The expression model's mean offset is added to the mean shape.

Both loaders check that the converted face spans 50..500 mm, which catches a wrong unit assumption;
pass ``unit_scale`` (file unit -> mm) to override it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from facegen.errors import DatasetLayoutError
from facegen.morphable.base import ModelLayoutError, MorphableModel
from facegen.shapes import assert_shape, format_shape

UM_TO_MM = 1e-3


def _vectors(flat: np.ndarray, path: Path, key: str, basis: bool = False) -> np.ndarray:
    """Interleaved ``x0 y0 z0 x1 ...`` columns: [3V] / [3V, 1] -> [V, 3]; with ``basis``, [3V, K] -> [K, V, 3]."""
    flat = np.asarray(flat, dtype=np.float64)
    if basis:
        assert_shape(flat, ["3V", "K"], f"{path}: {key}", error=ModelLayoutError, hint="one column per component")
    if flat.ndim == 0 or flat.shape[0] % 3:
        expected = ["3V", "K"] if basis else ["3V", *[None] * (flat.ndim - 1)]
        raise ModelLayoutError(f"{path}: {key}: expected shape {format_shape(expected)}, got "
                               f"{format_shape(flat.shape)}; x0 y0 z0 x1 ... (3 rows per vertex)")
    if basis:
        return flat.T.reshape(flat.shape[1], -1, 3)
    return flat.reshape(-1, 3)


def _check_extent(mean: np.ndarray, path: Path, scale: float) -> None:
    extent = float(np.ptp(mean, axis=0).max())
    if not 50.0 <= extent <= 500.0:
        raise ModelLayoutError(f"{path}: the mean face spans {extent:.3g} mm after scaling by {scale:g}; expected "
                               "50..500 mm (pass unit_scale= to convert the file's unit to mm)")


def _load_mat(path: Path, unit_scale: float | None) -> MorphableModel:
    try:
        data = scipy.io.loadmat(path)
    except (ValueError, NotImplementedError, OSError) as error:
        raise ModelLayoutError(f"{path}: not a readable MATLAB v5 file ({error})") from error
    for key in ("shapeMU", "shapePC", "shapeEV", "tri"):
        if key not in data:
            raise ModelLayoutError(f"{path}: missing {key!r}; BFM 2009 has shapeMU, shapePC, shapeEV, texMU, "
                                   "texPC, texEV, tri")
    scale = UM_TO_MM if unit_scale is None else unit_scale
    mean = _vectors(data["shapeMU"], path, "shapeMU") * scale
    _check_extent(mean, path, scale)
    id_basis = _vectors(data["shapePC"] * np.ravel(data["shapeEV"])[None], path, "shapePC", basis=True) * scale
    albedo_mean = albedo_basis = None
    if "texMU" in data:
        albedo_mean = _vectors(data["texMU"], path, "texMU") / 255.0
        albedo_basis = _vectors(data["texPC"] * np.ravel(data["texEV"])[None], path, "texPC", basis=True) / 255.0
    return MorphableModel(mean, np.asarray(data["tri"], dtype=np.int64) - 1, id_basis, None, None, albedo_mean,
                          albedo_basis, None, {"face": np.arange(len(mean))}, name=f"bfm2009({path.name})")


def _load_h5(path: Path, unit_scale: float | None) -> MorphableModel:
    import h5py  # optional at run time: only BFM .h5 files need it

    def pca(f, group: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            mean = np.asarray(f[f"{group}/model/mean"], dtype=np.float64)
            basis = np.asarray(f[f"{group}/model/pcaBasis"], dtype=np.float64)
            variance = np.asarray(f[f"{group}/model/pcaVariance"], dtype=np.float64)
        except KeyError as error:
            raise ModelLayoutError(f"{path}: missing {group}/model/{{mean, pcaBasis, pcaVariance}} ({error})") from error
        return _vectors(mean, path, f"{group}/model/mean"), \
            _vectors(basis * np.sqrt(variance)[None], path, f"{group}/model/pcaBasis", basis=True)

    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise ModelLayoutError(f"{path}: not a readable HDF5 file ({error})") from error
    with f:
        scale = 1.0 if unit_scale is None else unit_scale
        mean, id_basis = pca(f, "shape")
        mean, id_basis = mean * scale, id_basis * scale
        _check_extent(mean, path, scale)
        exp_basis = None
        if "expression" in f:
            exp_mean, exp_basis = pca(f, "expression")
            mean, exp_basis = mean + exp_mean * scale, exp_basis * scale
        albedo_mean = albedo_basis = None
        if "color" in f:
            albedo_mean, albedo_basis = pca(f, "color")
        if "shape/representer/cells" not in f:
            raise ModelLayoutError(f"{path}: missing shape/representer/cells (triangles [3, F])")
        faces = np.asarray(f["shape/representer/cells"], dtype=np.int64).T
    return MorphableModel(mean, faces, id_basis, exp_basis, None, albedo_mean, albedo_basis, None,
                          {"face": np.arange(len(mean))}, name=f"bfm2017({path.name})")


def load_bfm(path: str | os.PathLike, unit_scale: float | None = None) -> MorphableModel:
    """Load a Basel Face Model (2009 ``.mat`` or 2017/2019 statismo ``.h5``) in millimetres.

    Args:
        path: ``01_MorphableModel.mat`` or ``model2017-1_bfm_nomouth.h5`` (or another statismo face model).
        unit_scale: file unit -> mm factor; default 1e-3 for ``.mat`` (micrometres), 1 for ``.h5`` (mm).

    Returns:
        MorphableModel: ``id_basis`` [K, V, 3] mm per standard deviation, ``exp_basis`` (2017 only),
        albedo in [0, 1] per standard deviation, no landmarks, region ``face`` = all vertices.

    Raises:
        DatasetLayoutError: the file does not exist or has another suffix.
        ModelLayoutError: missing key/dataset, unreadable file, or a face not 50..500 mm across (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetLayoutError(f"{path}: BFM file not found (expected 01_MorphableModel.mat or model2017-1_*.h5)")
    if path.suffix == ".mat":
        return _load_mat(path, unit_scale)
    if path.suffix in (".h5", ".hdf5"):
        return _load_h5(path, unit_scale)
    raise DatasetLayoutError(f"{path}: unknown BFM file type; expected .mat (BFM 2009) or .h5 (BFM 2017)")
