"""FaceTuneGAN evaluation tables (and the tables that cannot be computed), validation metrics and the
MeshPictures callback."""
from __future__ import annotations

import logging

import lightning as L
import numpy as np
import pytest
import torch
import trimesh

from facegen.callbacks.mesh_pictures import MeshPictures
from facegen.data.meshes import MeshCollection, MeshDataModule
from facegen.models.facetunegan import (
    FaceTuneGAN,
    evaluate_facetunegan,
    log_rows,
    skipped_tables,
    write_tables,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def translated_spheres(n_identities: int = 4, identity_dependent: bool = False) -> MeshCollection:
    """Identity = scaled 40 mm sphere; expression s = a translation ``t_s`` of the whole mesh (mm),
    scaled by the identity's size when ``identity_dependent`` (one mesh per identity x expression)."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    unit, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces, dtype=np.int64)
    shifts = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, -3.0, 1.0]])
    meshes, identity, expression = [], [], []
    for c in range(n_identities):
        size = 1.0 + 0.1 * c
        for s, shift in enumerate(shifts):
            meshes.append(40.0 * size * unit + shift * (size if identity_dependent else 1.0))
            identity.append(c)
            expression.append(s)
    n = len(meshes)
    return MeshCollection(
        vertices=np.asarray(meshes, dtype=np.float32), identity=np.asarray(identity), expression=np.asarray(expression),
        identity_names=[f"id{c}" for c in range(n_identities)], expression_names=["neutral", "right", "down"],
        faces=faces, template=np.asarray(meshes[0], dtype=np.float32), split=np.asarray(["test"] * n),
    )


class SplitData:
    """The one method of MeshDataModule that evaluation uses."""

    def __init__(self, collection: MeshCollection) -> None:
        self.collection = collection

    def collection_for(self, split: str) -> MeshCollection:
        return self.collection


class GroundTruthModel:
    """A 'perfect' model: returns the collection's mesh with the content's identity and the style's
    expression, shifted by ``offset`` mm."""

    def __init__(self, collection: MeshCollection, offset=(0.0, 0.0, 0.0)) -> None:
        self.labels = {m.tobytes(): (int(c), int(s)) for m, c, s in
                       zip(collection.vertices, collection.identity, collection.expression)}
        self.meshes = {label: m for m, label in zip(collection.vertices, self.labels.values())}
        self.offset = torch.tensor(offset, dtype=torch.float32)

    def translate(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        out = [self.meshes[(self.labels[c.numpy().tobytes()][0], self.labels[s.numpy().tobytes()][1])]
               for c, s in zip(content, style)]
        return torch.as_tensor(np.stack(out)) + self.offset

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.translate(x, x)


def test_perfect_model_scores_its_offset_and_deformation_transfer_is_exact(tmp_path):
    collection = translated_spheres()
    tables = evaluate_facetunegan(GroundTruthModel(collection, offset=(0.6, 0.0, 0.8)), SplitData(collection),
                                  n_triplets=100, seed=0)
    assert tables["reconstruction"][0]["mean_mm"] == pytest.approx(1.0, abs=1e-5)
    assert tables["reconstruction"][0]["std_mm"] == pytest.approx(0.0, abs=1e-5)
    assert tables["identity_decomposition"][0]["mean_mm"] == pytest.approx(0.0, abs=1e-5)
    model_row, dt_row = tables["neutralisation"]
    assert model_row["mean_mm"] == pytest.approx(1.0, abs=1e-5) and model_row["n"] == 24   # 4 * 3 * 2 triplets
    assert dt_row["model"] == "Deformation transfer" and dt_row["mean_mm"] == pytest.approx(0.0, abs=1e-6)
    transfer = {row["expression"]: row for row in tables["expression_transfer"]}
    assert set(transfer) == {"right", "down", "all"} and transfer["all"]["n"] == 24
    for row in transfer.values():
        assert row["facetunegan_mm"] == pytest.approx(1.0, abs=1e-5)
        assert row["deformation_transfer_mm"] == pytest.approx(0.0, abs=1e-6)

    paths = write_tables(tables, tmp_path)
    assert {p.name for p in paths} >= {"facetunegan_expression_transfer.md", "facetunegan_reconstruction.csv"}
    assert "| expression | facetunegan_mm | deformation_transfer_mm | n |" in (
        tmp_path / "facetunegan_expression_transfer.md").read_text()
    metrics = log_rows(tables)
    assert skipped_tables(tables) == {}
    assert metrics["test/transfer_error_mm"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["test/neutralisation_error_mm_deformation_transfer"] == pytest.approx(0.0, abs=1e-6)


def test_identity_dependent_expressions_defeat_deformation_transfer():
    collection = translated_spheres(identity_dependent=True)
    tables = evaluate_facetunegan(GroundTruthModel(collection), SplitData(collection), n_triplets=100, seed=0)
    transfer = {row["expression"]: row for row in tables["expression_transfer"]}
    assert transfer["all"]["facetunegan_mm"] == pytest.approx(0.0, abs=1e-6)
    # the shift is scaled by the subject's size (1.0 .. 1.3), which copying the source's motion ignores
    assert 0.05 < transfer["all"]["deformation_transfer_mm"] < 1.2


def test_single_subject_names_the_tables_it_cannot_compute(tmp_path, caplog):
    """One test identity: Tables 2-4 need two, so each is one 'not computed' row with the reason (and a warning);
    the file is still written, and the logger metrics leave them out."""
    collection = translated_spheres(n_identities=1)
    with caplog.at_level(logging.WARNING, logger="facegen.models.facetunegan"):
        tables = evaluate_facetunegan(GroundTruthModel(collection), SplitData(collection), n_triplets=10)
    assert set(tables) == {"reconstruction", "identity_decomposition", "neutralisation", "expression_transfer"}
    assert len(tables["reconstruction"]) == 1 and "mean_mm" in tables["reconstruction"][0]
    skipped = skipped_tables(tables)
    assert set(skipped) == {"identity_decomposition", "neutralisation", "expression_transfer"}
    for name, reason in skipped.items():
        assert tables[name] == [{"status": "not computed", "reason": reason}]
        assert "the test split has 1 identities" in reason
        assert f"table {name!r} not computed" in caplog.text
    assert "needs two identities with a neutral mesh" in skipped["identity_decomposition"]
    assert "share a non-neutral expression" in skipped["expression_transfer"]
    write_tables(tables, tmp_path)
    assert "| status | reason |" in (tmp_path / "facetunegan_expression_transfer.md").read_text()
    assert set(log_rows(tables)) == {"test/rec_error_mm"}


def test_no_expression_labels_and_no_triplets_asked_are_named():
    neutral_only = translated_spheres(n_identities=3)
    neutral_only = neutral_only.subset(np.flatnonzero(neutral_only.expression == 0))
    tables = evaluate_facetunegan(GroundTruthModel(neutral_only), SplitData(neutral_only), n_triplets=10)
    skipped = skipped_tables(tables)
    assert set(skipped) == {"neutralisation", "expression_transfer"}            # identity decomposition works
    assert "0 non-neutral expression labels" in skipped["expression_transfer"]
    collection = translated_spheres()
    tables = evaluate_facetunegan(GroundTruthModel(collection), SplitData(collection), n_triplets=0, baseline=False)
    assert skipped_tables(tables)["expression_transfer"] == "n_triplets = 0 (model.evaluation.eval_triplets)"


def test_fit_logs_validation_metrics_and_pictures(tmp_path):
    """One short fit on the procedural data through MeshDataModule.model_kwargs(), as train.py builds it."""
    datamodule = MeshDataModule("procedural", n_identities=5, samples_per_expression=1, batch_size=4,
                                val_fraction=0.4, test_fraction=0.2, cache_dir=tmp_path / "cache")
    datamodule.prepare_data()
    datamodule.setup("fit")
    torch.manual_seed(0)
    model = FaceTuneGAN(**datamodule.model_kwargs(),
                        generator=dict(channels=[8, 8], style_channels=[8, 8], content_dim=4, style_dim=4,
                                       mapping_hidden=[16]),
                        discriminator=dict(channels=[8, 8]), hierarchy=dict(down_factors=[4, 4]),
                        evaluation=dict(val_triplets=4))
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path / "run", num_sanity_val_steps=0,
                        callbacks=[MeshPictures(num_samples=2, num_transfers=2, size=48)])
    trainer.fit(model, datamodule=datamodule)
    metrics = trainer.callback_metrics
    assert 0 < float(metrics["val/rec_error_mm"]) < 100 and 0 < float(metrics["val/transfer_error_mm"]) < 100
    pictures = tmp_path / "run" / "pictures"
    reconstruction = sorted((pictures / "val_reconstruction").glob("*.png"))
    transfer = sorted((pictures / "val_transfer").glob("*.png"))
    assert len(reconstruction) == 2 and len(transfer) == 2
    assert len(list((pictures / "meshes").glob("*.obj"))) == 1
