"""FaceTuneGAN's options for short CPU runs (conf/experiment/facetunegan_cpu30.yaml): zero output init and
the linear skip paths (decoder, style, content encoder) of ``model.generator``, the paired translation loss and the
mm loss space of ``model.loss``, the cosine lr decay of ``model.schedule``."""
from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from test_facetunegan import make_model, sphere_meshes  # noqa: E402  (same folder, pytest rootdir import)
from torch.utils.data import DataLoader

from facegen.data.meshes import MeshCollection
from facegen.errors import ConfigError, FacegenError
from facegen.models.facetunegan.objective import vertex_distance
from facegen.models.facetunegan.pairs import pair_targets

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def meshes():
    vertices, faces, identity, expression = sphere_meshes(n_identities=4, n_expressions=3)
    collection = MeshCollection(
        vertices=vertices, identity=identity, expression=expression,
        identity_names=[f"id{c}" for c in range(4)], expression_names=["neutral", "up", "front"],
        faces=faces, template=vertices[0], split=np.asarray(["train"] * len(vertices)))
    mean, std = vertices.mean(0), np.maximum(vertices.std(0), 0.1)
    kwargs = dict(template_vertices=vertices[0], template_faces=faces, num_styles=3,
                  style_names=["neutral", "up", "front"], mean=mean, std=std, hierarchy_cache_dir=None)
    return kwargs, collection


def test_zero_output_init_and_skip_start_at_the_mean_face(meshes):
    kwargs, collection = meshes
    x = torch.as_tensor(collection.vertices[:4])
    mean = torch.as_tensor(kwargs["mean"]).expand_as(x)
    for options in (dict(output_init="zero"), dict(output_init="zero", decoder_skip=True),
                    dict(output_init="zero", decoder_skip=True, style_skip=True),
                    dict(output_init="zero", decoder_skip=True, style_skip=True, content_skip=True)):
        model = make_model((kwargs,), generator=options)
        torch.testing.assert_close(model.translate(x, x.flip(0)), mean)
    decoder = make_model((kwargs,), generator=dict(decoder_skip=True, style_skip=True)).generator.decoder
    for path in (decoder.skip, decoder.style_skip):
        assert path.out_features == x.shape[1] * 3 and float(path.weight.abs().max()) == 0.0
    assert decoder.style_skip.in_features == make_model((kwargs,)).hparams.generator["style_dim"]
    encoder = make_model((kwargs,), generator=dict(content_skip=True)).generator.content_encoder
    assert encoder.skip.in_features == x.shape[1] * 3 and float(encoder.skip.weight.abs().max()) == 0.0
    assert make_model((kwargs,)).generator.content_encoder.skip is None
    content_code = torch.zeros(2, decoder.skip.in_features)
    with pytest.raises(FacegenError, match="style_code"):
        decoder(content_code, torch.zeros(2, sum(2 * c for c in decoder.adain_channels)))
    assert not torch.allclose(make_model((kwargs,)).translate(x, x), mean, atol=1e-3)   # paper init: not the mean
    with pytest.raises(ConfigError, match=r"model.generator: Generator: output_init='xavier'"):
        make_model((kwargs,), generator=dict(output_init="xavier"))
    with pytest.raises(ConfigError, match="model.loss.lambda_pair"):
        make_model((kwargs,), loss=dict(lambda_pair=-1.0))


def test_pair_targets_are_the_content_identity_with_the_style_label(meshes):
    kwargs, collection = meshes
    keep = ~((collection.identity == 2) & (collection.expression == 1))          # identity 2 never makes 'up'
    model = make_model((kwargs,), loss=dict(lambda_pair=1.0))
    bank = model.pair_bank(collection.subset(np.flatnonzero(keep)))
    identity = torch.tensor([0, 1, 2, 3, 2, 7])
    label = torch.tensor([2, 0, 1, 1, 2, 0])
    targets, mask = pair_targets(bank, identity, label)
    assert mask.tolist() == [True, True, False, True, True, False]              # (2, up) missing, id 7 unknown
    for b in np.flatnonzero(mask.numpy()):
        row = np.flatnonzero((collection.identity == int(identity[b])) & (collection.expression == int(label[b])))
        expected = model.normalise(torch.as_tensor(collection.vertices[row]))[0]
        torch.testing.assert_close(targets[b], expected)


class _PairData(L.LightningDataModule):
    """A train loader over the collection and the ``collection_for`` the paired loss reads."""

    def __init__(self, collection: MeshCollection, mean, std) -> None:
        super().__init__()
        self.collection = collection
        x = (collection.vertices - mean) / std
        self.items = [{"vertices": torch.as_tensor(x[i]), "identity": torch.tensor(int(collection.identity[i])),
                       "expression": torch.tensor(int(collection.expression[i])), "index": torch.tensor(i)}
                      for i in range(len(x))]

    def collection_for(self, split: str) -> MeshCollection:
        return self.collection

    def train_dataloader(self):
        return DataLoader(self.items, batch_size=6, shuffle=True, generator=torch.Generator().manual_seed(0))


def test_paired_loss_trains_translation_toward_the_pair(meshes, tmp_path):
    kwargs, collection = meshes
    model = make_model((kwargs,), loss=dict(lambda_pair=1.0), generator=dict(output_init="zero", decoder_skip=True),
                       optimizer=dict(lr=3e-3))
    x = torch.as_tensor(collection.vertices)
    content, style = torch.arange(12), torch.arange(12).roll(5)       # all (identity, expression) pairs exist
    target_rows = [int(np.flatnonzero((collection.identity == collection.identity[c])
                                      & (collection.expression == collection.expression[s]))[0])
                   for c, s in zip(content.tolist(), style.tolist())]

    def transfer_error() -> float:
        return float((model.translate(x[content], x[style]) - x[target_rows]).norm(dim=-1).mean())

    before = transfer_error()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=_PairData(collection, kwargs["mean"], kwargs["std"]))
    after = transfer_error()
    assert after < 0.85 * before, (before, after)
    for key in ("train/loss_pair", "train/pair_error_mm"):
        assert torch.isfinite(trainer.callback_metrics[key]), key


def test_paired_loss_needs_a_datamodule(meshes, tmp_path):
    kwargs, collection = meshes
    model = make_model((kwargs,), loss=dict(lambda_pair=1.0))
    items = _PairData(collection, kwargs["mean"], kwargs["std"]).items
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with pytest.raises(FacegenError, match="collection_for"):
        trainer.fit(model, train_dataloaders=DataLoader(items, batch_size=6))


def test_cosine_lr_decay_reaches_the_final_fraction_and_stays(meshes, tmp_path):
    kwargs, collection = meshes
    model = make_model((kwargs,), optimizer=dict(lr=1e-3), schedule=dict(lr_decay_batches=3, lr_final_fraction=0.1))
    assert [round(model.lr_factor(b), 6) for b in (0, 1.5, 3, 10)] == [1.0, 0.55, 0.1, 0.1]
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,    # 2 batches/epoch
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=_PairData(collection, kwargs["mean"], kwargs["std"]))
    for optimizer in trainer.optimizers:                                        # generator and discriminator
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert model.lr_schedulers()[0].last_epoch == 6                            # stepped once per batch
    paper = make_model((kwargs,)).configure_optimizers()                        # paper: constant lr, no schedulers
    assert len(paper) == 2 and all(isinstance(opt, torch.optim.Adam) for opt in paper)
    with pytest.raises(ConfigError, match="model.schedule.lr_decay_batches: must be >= 0, got -1"):
        make_model((kwargs,), schedule=dict(lr_decay_batches=-1))


def test_mm_loss_space_weights_each_vertex_by_its_std(meshes):
    """``loss_space="mm"``: the distance is the mm distance divided by mean(std); "normalised" is the plain one."""
    kwargs, collection = meshes
    std = torch.as_tensor(kwargs["std"])
    target = torch.zeros(2, *std.shape)
    prediction = target.clone()
    prediction[:, 0, 0] = 1.0                                        # 1 std on vertex 0's x only
    plain, mm = make_model((kwargs,)), make_model((kwargs,), loss=dict(loss_space="mm"))
    vertices, floor = std.shape[0], 1e-4                            # sqrt(eps) of every zero distance
    expected_plain = (1.0 + (vertices - 1) * floor) / vertices
    assert float(vertex_distance(plain, prediction, target)) == pytest.approx(expected_plain, rel=1e-4)
    weight = float(std[0, 0]) / float(std.mean())                   # 1 std = std[0, 0] mm, over mean(std)
    expected_mm = (weight + (vertices - 1) * floor) / vertices
    assert float(vertex_distance(mm, prediction, target)) == pytest.approx(expected_mm, rel=1e-4)
    assert weight != pytest.approx(1.0, rel=0.05)                   # the two spaces differ here
    assert plain.hparams.loss["loss_space"] == "normalised"
    with pytest.raises(ConfigError, match="model.loss.loss_space: expected one of 'normalised', 'mm', got 'metres'"):
        make_model((kwargs,), loss=dict(loss_space="metres"))
