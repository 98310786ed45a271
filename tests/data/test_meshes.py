"""MeshDataModule: batches, train-only normalisation, the memory-mapped cache and its reuse."""
from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facegen.data.mesh_sources import facescape
from facegen.data.meshes import MeshCollection, MeshDataModule, MeshDataset
from facegen.errors import DatasetLayoutError, MeshFormatError

N_SUBJECTS, N_EXPRESSIONS, N_VERTICES = 6, 3, 8
FACES = ["f 1 2 3 4", "f 5 6 7 8"]


def write_facescape(root: Path) -> Path:
    """FaceScape TU layout with random vertices (mm); vertex 7 is the same in every model."""
    from facegen.morphable import FACESCAPE_EXPRESSIONS

    rng = np.random.default_rng(0)
    for s in range(N_SUBJECTS):
        folder = root / str(s + 1) / "models_reg"
        folder.mkdir(parents=True)
        for k in range(N_EXPRESSIONS):
            v = rng.normal(scale=10.0, size=(N_VERTICES, 3)) + 30.0 * s
            v[7] = [1.0, 2.0, 3.0]
            lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v] + FACES
            (folder / f"{k + 1}_{FACESCAPE_EXPRESSIONS[k]}.obj").write_text("\n".join(lines) + "\n")
    return root


def make(root, cache_dir, **kwargs) -> MeshDataModule:
    options = dict(cache_dir=cache_dir, batch_size=4, val_fraction=0.2, test_fraction=0.2, seed=1, std_floor=1e-3)
    dm = MeshDataModule("facescape", root, **{**options, **kwargs})
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.fixture
def fs_root(tmp_path) -> Path:
    return write_facescape(tmp_path / "facescape")


def test_batches_are_normalised_with_train_statistics(fs_root, tmp_path):
    dm = make(fs_root, tmp_path / "cache")
    c = dm.collection
    train = dm.collection_for("train")
    assert set(train.split) == {"train"} and len(train) + len(dm.collection_for("val")) + len(dm.collection_for("test")) == len(c)
    np.testing.assert_allclose(dm.mean, train.vertices.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(dm.std[:7], train.vertices.std(axis=0)[:7], rtol=1e-4)
    assert not np.allclose(dm.mean, np.asarray(c.vertices).mean(axis=0), atol=1e-2)  # not the all-data mean

    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"vertices", "identity", "expression", "index"}
    assert batch["vertices"].shape == (4, N_VERTICES, 3) and batch["vertices"].dtype == torch.float32
    rows = batch["index"].numpy()
    assert (c.split[rows] == "train").all()
    np.testing.assert_array_equal(batch["identity"].numpy(), c.identity[rows])
    np.testing.assert_array_equal(batch["expression"].numpy(), c.expression[rows])
    np.testing.assert_allclose(batch["vertices"].numpy(), (c.vertices[rows] - dm.mean) / dm.std, atol=1e-4)
    np.testing.assert_allclose(dm.denormalise(batch["vertices"]).numpy(), c.vertices[rows], atol=1e-3)
    np.testing.assert_allclose(dm.normalise_vertices(np.asarray(c.vertices[rows])), batch["vertices"].numpy(), atol=1e-4)

    for split, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        seen = torch.cat([b["index"] for b in loader]).numpy()
        np.testing.assert_array_equal(seen, c.indices(split))
    # whole subjects per split (FaceScape: unseen test identities)
    assert set(c.identity[c.split == "train"]).isdisjoint(c.identity[c.split == "test"])


def test_std_floor_and_unnormalised_batches(fs_root, tmp_path):
    dm = make(fs_root, tmp_path / "cache", std_floor=0.5)
    assert (dm.std[7] == 0.5).all()  # vertex 7 never moves: floored
    raw = make(fs_root, tmp_path / "cache", normalise=False)
    batch = next(iter(raw.test_dataloader()))
    np.testing.assert_allclose(batch["vertices"].numpy(), raw.collection.vertices[batch["index"].numpy()], atol=1e-5)
    assert (raw.mean == 0).all() and (raw.std == 1).all()


def test_cache_written_once_and_reused_without_reading(fs_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = make(fs_root, cache)
    folder = first.cache_path
    left = sorted(p.name for p in cache.iterdir() if p.suffix != ".lock")  # the builders' lock file stays
    assert folder.parent == cache and left == [folder.name]  # no tmp left
    assert {"vertices.npy", "meta.json", "mean.npy", "std.npy", "split.npy"} <= {p.name for p in folder.iterdir()}

    def fail(*args, **kwargs):
        raise AssertionError("mesh files were read again")

    monkeypatch.setattr(facescape, "load_mesh", fail)
    second = make(fs_root, cache)
    assert second.cache_path == folder
    assert isinstance(second.collection.vertices, np.memmap)
    np.testing.assert_array_equal(second.collection.vertices, first.collection.vertices)
    np.testing.assert_array_equal(second.collection.split, first.collection.split)
    assert second.style_names == first.style_names

    # another seed, option or a touched file gives another cache
    assert MeshDataModule("facescape", fs_root, cache_dir=cache, seed=2).cache_path != folder
    assert MeshDataModule("facescape", fs_root, cache_dir=cache, seed=1, discard=["3"]).cache_path != folder
    touched = fs_root / "2" / "models_reg" / "1_neutral.obj"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = MeshDataModule("facescape", fs_root, cache_dir=cache, batch_size=4, val_fraction=0.2,
                           test_fraction=0.2, seed=1, std_floor=1e-3)
    assert again.cache_path != folder
    with pytest.raises(AssertionError, match="read again"):
        again.prepare_data()


def test_memmap_dataset_pickles_by_file_name_and_works_in_workers(fs_root, tmp_path):
    dm = make(fs_root, tmp_path / "cache", num_workers=1)
    dataset = dm.datasets["train"]
    payload = pickle.dumps(dataset)
    assert len(payload) < dataset.vertices.nbytes
    restored = pickle.loads(payload)
    assert restored.__dict__["_vertices"] is None  # re-opened lazily from the cache file
    np.testing.assert_array_equal(restored[0]["vertices"], dataset[0]["vertices"])
    indices = torch.cat([b["index"] for b in dm.train_dataloader()]).sort().values.numpy()
    np.testing.assert_array_equal(indices, dm.collection.indices("train"))


def test_model_kwargs_and_in_memory_build(fs_root):
    from facegen.morphable import FACESCAPE_EXPRESSIONS

    dm = make(fs_root, None)
    assert dm.cache_path is None and not isinstance(dm.collection.vertices, np.memmap)
    kwargs = dm.model_kwargs()
    assert set(kwargs) == {"template_vertices", "template_faces", "num_styles", "style_names", "mean", "std",
                           "hierarchy_cache_dir"}
    assert kwargs["template_vertices"].shape == (N_VERTICES, 3) and kwargs["template_vertices"].dtype == np.float32
    assert kwargs["template_faces"].tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]]
    assert kwargs["num_styles"] == 20 and kwargs["style_names"] == list(FACESCAPE_EXPRESSIONS)
    assert kwargs["mean"].shape == kwargs["std"].shape == (N_VERTICES, 3)
    assert kwargs["hierarchy_cache_dir"] is None
    neutral = dm.collection.vertices[dm.collection.expression == 0]
    np.testing.assert_allclose(dm.template, neutral.mean(axis=0), atol=1e-4)


def test_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="unknown mesh source"):
        MeshDataModule("flame")
    dm = MeshDataModule("coma", tmp_path / "absent", cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetLayoutError, match="FaceTalk_"):
        dm.prepare_data()
    with pytest.raises(RuntimeError, match="setup"):
        _ = dm.mean
    bad = MeshCollection(np.zeros((2, 4, 3), np.float32), np.zeros(2, np.int64), np.zeros(2, np.int64), ["a"],
                         ["smile"], np.zeros((1, 3), np.int64), np.zeros((4, 3), np.float32), np.array(["train"] * 2))
    with pytest.raises(MeshFormatError, match="'neutral'"):
        bad.validate("fixture")
    assert len(MeshDataset(bad, np.arange(2))) == 2


def test_procedural_datamodule(tmp_path):
    start = time.perf_counter()
    dm = MeshDataModule("procedural", cache_dir=tmp_path / "cache", n_identities=5, samples_per_expression=1,
                        batch_size=5, val_fraction=0.2, test_fraction=0.2)
    dm.prepare_data()
    dm.setup("fit")
    print(f"procedural datamodule: {len(dm.collection)} meshes in {time.perf_counter() - start:.2f} s")
    batch = next(iter(dm.train_dataloader()))
    assert batch["vertices"].shape == (5, dm.template.shape[0], 3)
    assert dm.style_names[0] == "neutral" and dm.model_kwargs()["num_styles"] == len(dm.style_names) >= 13
    assert dm.model_kwargs()["hierarchy_cache_dir"] == str(tmp_path / "cache" / "hierarchy")
    assert set(dm.collection.identity[dm.collection.split == "test"]).isdisjoint(
        dm.collection.identity[dm.collection.split == "train"])
    assert abs(float(dm.datasets["train"][0]["vertices"].mean())) < 5.0  # normalised, not mm
