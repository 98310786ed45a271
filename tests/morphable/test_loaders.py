"""ICT-FaceKit, FLAME and BFM loaders: units, layouts, caching, and errors naming the file."""
from __future__ import annotations

import pickle
import sys
import time
import types

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from facegen.errors import DatasetLayoutError, FacegenError, MeshFormatError
from facegen.morphable import load_bfm, load_flame, load_ict_facekit

V = 4
FACES = np.array([[0, 1, 2], [0, 2, 3]])
TEMPLATE_M = np.array([[-0.07, 0.0, 0.0], [0.07, 0.0, 0.0], [0.0, 0.08, 0.02], [0.0, -0.06, 0.03]])  # metres


# ---------------------------------------------------------------------------------------------- ICT
@pytest.fixture(scope="module")
def ict_model(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    root = SHARED_DATA / "ict_facekit"
    if not root.is_dir():
        pytest.skip(f"ICT-FaceKit not found at {root}")
    cache = tmp_path_factory.mktemp("ict_cache")
    start = time.perf_counter()
    model = load_ict_facekit(root, cache_dir=cache)
    first = time.perf_counter() - start
    start = time.perf_counter()
    cached = load_ict_facekit(root, cache_dir=cache)
    print(f"ICT-FaceKit load: {first:.1f} s parsing 68 OBJs, {time.perf_counter() - start:.2f} s from the cache")
    assert torch.equal(model.exp_basis, cached.exp_basis)
    return model


@pytest.mark.realdata
def test_ict_face_area_in_mm(ict_model, shared_data):
    model = ict_model
    assert (model.n_vertices, model.faces.shape[0], model.n_id, model.n_exp) == (9409, 18461, 10, 57)
    assert model.unit == "mm" and model.exp_names[:2] == ["browDown_L", "browDown_R"] and "jawOpen" in model.exp_names
    lm = model.landmarks(model.mean_shape[None])[0]
    assert 120 < (lm[16] - lm[0]).norm() < 170                  # face width at the temples, mm (14.7 cm)
    assert 40 < (lm[54] - lm[48]).norm() < 65                   # mouth width
    assert lm[36, 0] < 0 < lm[45, 0]                            # Multi-PIE 36 on the subject's right
    jaw = model.vertices(None, torch.eye(model.n_exp)[model.exp_names.index("jawOpen")][None])
    assert (model.landmarks(jaw)[0, 8] - lm[8]).norm() > 10    # the chin drops by centimetres, in mm
    regions = {k: set(v.tolist()) for k, v in model.regions.items()}
    landmark_ids = model.landmark_indices.tolist()
    for region, points in {"eye_right": range(36, 42), "eye_left": range(42, 48), "lips": range(48, 68),
                           "nose": range(27, 36), "brows": range(17, 27)}.items():
        assert all(landmark_ids[k] in regions[region] for k in points), region


@pytest.mark.realdata
def test_ict_rejects_more_identities_than_present(shared_data):
    with pytest.raises(DatasetLayoutError, match="n_id=11"):
        load_ict_facekit(shared_data / "ict_facekit", n_id=11)


def test_ict_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetLayoutError, match="generic_neutral_mesh.obj"):
        load_ict_facekit(tmp_path)
    (tmp_path / "generic_neutral_mesh.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(DatasetLayoutError, match="vertex_indices.json"):
        load_ict_facekit(tmp_path)
    (tmp_path / "vertex_indices.json").write_text('{"expressions": ["jawOpen"], "idx_to_landmark_verts": '
                                                  + str(list(range(68))) + "}")
    with pytest.raises(DatasetLayoutError, match="jawOpen.obj"):
        load_ict_facekit(tmp_path)
    (tmp_path / "jawOpen.obj").write_text("v 0 0 0\n")
    with pytest.raises(MeshFormatError, match="generic_neutral_mesh.obj: has 3 vertices, expected 26719"):
        load_ict_facekit(tmp_path)


# ---------------------------------------------------------------------------------------------- FLAME
def _fake_chumpy():
    """A stand-in ``chumpy`` package whose Ch pickles like chumpy's (state dict with the array in ``x``)."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x
            self._cache = {"r": None}

        def __getstate__(self):
            return {"x": self.x, "_dirty_vars": set()}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    chumpy.ch = ch
    return chumpy, ch


def _flame_arrays(k: int = 400):
    rng = np.random.default_rng(0)
    return TEMPLATE_M, rng.normal(scale=1e-3, size=(V, 3, k))


def test_flame_pickle_with_chumpy_loads_without_chumpy(tmp_path):
    template, shapedirs = _flame_arrays()
    chumpy, ch = _fake_chumpy()
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    try:
        data = {"v_template": ch.Ch(template), "shapedirs": ch.Ch(shapedirs), "f": FACES.astype(np.uint32),
                "posedirs": ch.Ch(np.zeros((V, 3, 36))), "bs_style": "lbs"}
        (tmp_path / "generic_model.pkl").write_bytes(pickle.dumps(data, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    model = load_flame(tmp_path / "generic_model.pkl")
    assert (model.n_id, model.n_exp, model.n_vertices) == (300, 100, V)
    assert np.allclose(model.mean_shape.numpy(), template * 1000, atol=1e-4)      # metres -> mm
    assert np.allclose(model.id_basis[5].numpy(), shapedirs[:, :, 5] * 1000, atol=1e-5)
    assert np.allclose(model.exp_basis[0].numpy(), shapedirs[:, :, 300] * 1000, atol=1e-5)
    assert model.faces.tolist() == FACES.tolist() and model.landmark_indices is None


def test_flame_npz_and_refuses_code(tmp_path):
    template, shapedirs = _flame_arrays()
    np.savez(tmp_path / "flame.npz", v_template=template, shapedirs=shapedirs, f=FACES)
    assert load_flame(tmp_path / "flame.npz", n_shape=10, n_exp=5).n_exp == 5

    class Exploit:
        def __reduce__(self):
            return (print, ("code ran",))
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"v_template": Exploit()}))
    with pytest.raises(FacegenError, match="refused to load the global 'builtins.print'"):
        load_flame(tmp_path / "evil.pkl")
    np.savez(tmp_path / "bad.npz", v_template=template, f=FACES)
    with pytest.raises(FacegenError, match="'shapedirs'"):
        load_flame(tmp_path / "bad.npz")
    with pytest.raises(DatasetLayoutError, match="missing.pkl"):
        load_flame(tmp_path / "missing.pkl")


# ---------------------------------------------------------------------------------------------- BFM
def test_bfm2009_mat_micrometres_to_mm(tmp_path):
    rng = np.random.default_rng(1)
    mean_um = TEMPLATE_M * 1e6                                   # micrometres
    pcs, ev = rng.normal(size=(3 * V, 2)), np.array([[2.0], [3.0]])
    scipy.io.savemat(tmp_path / "01_MorphableModel.mat", {
        "shapeMU": mean_um.reshape(-1, 1), "shapePC": pcs, "shapeEV": ev,
        "texMU": np.full((3 * V, 1), 127.5), "texPC": rng.normal(size=(3 * V, 1)), "texEV": np.array([[10.0]]),
        "tri": FACES + 1})
    model = load_bfm(tmp_path / "01_MorphableModel.mat")
    assert np.allclose(model.mean_shape.numpy(), TEMPLATE_M * 1000, atol=1e-3)
    assert np.allclose(model.id_basis[1].numpy(), pcs[:, 1].reshape(V, 3) * 3.0 * 1e-3, atol=1e-6)
    assert model.faces.tolist() == FACES.tolist() and model.n_exp == 0
    assert torch.allclose(model.albedo()[0], torch.full((V, 3), 0.5))
    with pytest.raises(FacegenError, match="spans"):
        load_bfm(tmp_path / "01_MorphableModel.mat", unit_scale=1.0)   # micrometres read as mm: 140 m wide


def test_bfm2017_h5_statismo_layout(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "model2017-1_bfm_nomouth.h5"
    basis = np.linalg.qr(rng.normal(size=(3 * V, 2)))[0]
    with h5py.File(path, "w") as f:
        f["shape/model/mean"] = (TEMPLATE_M * 1000).ravel()
        f["shape/model/pcaBasis"] = basis
        f["shape/model/pcaVariance"] = np.array([4.0, 1.0])
        f["shape/representer/cells"] = FACES.T
        f["expression/model/mean"] = np.full(3 * V, 0.5)
        f["expression/model/pcaBasis"] = basis[:, :1]
        f["expression/model/pcaVariance"] = np.array([9.0])
        f["color/model/mean"] = np.full(3 * V, 0.6)
        f["color/model/pcaBasis"] = basis[:, :1]
        f["color/model/pcaVariance"] = np.array([0.01])
    model = load_bfm(path)
    assert np.allclose(model.mean_shape.numpy(), TEMPLATE_M * 1000 + 0.5, atol=1e-4)
    assert np.allclose(model.id_basis[0].numpy(), basis[:, 0].reshape(V, 3) * 2.0, atol=1e-6)
    assert np.allclose(model.exp_basis[0].numpy(), basis[:, 0].reshape(V, 3) * 3.0, atol=1e-6)
    assert model.faces.tolist() == FACES.tolist() and model.n_alb == 1
    with h5py.File(tmp_path / "broken.h5", "w") as f:
        f["shape/model/mean"] = np.zeros(3 * V)
    with pytest.raises(FacegenError, match="broken.h5: missing shape/model"):
        load_bfm(tmp_path / "broken.h5")
