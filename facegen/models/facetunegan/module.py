"""FaceTuneGAN as a LightningModule: expression transfer between 3D faces of one topology.

Olivier et al., "FaceTuneGAN: Face Autoencoder for Convolutional Expression Transfer Using Neural
Generative Adversarial Networks", Computers & Graphics 2023. One generator step and one
discriminator step per batch (sec. 3.3), Adam(lr 1e-4, weight decay 5e-5), objective eq. (10) plus
a uniform Laplacian smoothing term on translated meshes. Options outside the paper, all off by default
and used by the CPU-budget experiment (conf/experiment/facetunegan_cpu30.yaml): a supervised
cross-identity translation loss (``loss.lambda_pair``), a zero initialisation of the decoder's output layer
(``generator.output_init``), linear skip paths (``generator.decoder_skip``, ``style_skip``, ``content_skip``),
mm-weighted vertex distances (``loss.loss_space``) and a cosine lr decay (``schedule.lr_decay_batches``).

Units: batches hold per-vertex normalised coordinates ``(x_mm - mean) / std`` (``mean``/``std``
``[V, 3]`` mm from the training split). The networks, the reconstruction/cycle losses and the
discriminator work in that space; the Laplacian loss and every logged error are in millimetres.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np
import torch

from facegen.config.blocks import block, plain
from facegen.config.spec import optimizer_factory
from facegen.errors import CheckpointError, FacegenError
from facegen.geometry import build_mesh_hierarchy, unique_edges
from facegen.metrics.mesh import draw_triplets
from facegen.models.base import FacegenModule
from facegen.models.facetunegan.config import (
    DISCRIMINATOR_TARGET,
    GENERATOR_TARGET,
    EvaluationConfig,
    HierarchyConfig,
    LossConfig,
    ScheduleConfig,
    build_network,
    network_spec,
    optimizer_spec,
)
from facegen.models.facetunegan.evaluation import (
    evaluate_facetunegan,
    transfer_errors,
    triplet_meshes,
)
from facegen.models.facetunegan.objective import discriminator_terms, generator_terms
from facegen.models.facetunegan.pairs import PairBank, pair_bank, pair_targets
from facegen.models.gan import grad_scaler, guarded_step
from facegen.shapes import assert_shape

log = logging.getLogger(__name__)

_DATA_KEY = "facetunegan_data"
_DATA_FIELDS = ("template_vertices", "template_faces", "mean", "std")


class FaceTuneGAN(FacegenModule):
    """FaceTuneGAN: content (identity) / style (expression) autoencoder trained adversarially.

    Data arguments (``MeshDataModule.model_kwargs()``; the arrays are stored in the checkpoint):
        template_vertices: ``[V, 3]`` float32 template, mm.
        template_faces: ``[F, 3]`` int64 triangles.
        num_styles: number of expression classes; style_names: their names (index 0 = neutral).
        mean, std: ``[V, 3]`` mm, per-vertex normalisation of the batches.
        hierarchy_cache_dir: folder for the cached mesh hierarchy (None: no cache).

    Blocks (conf/model/facetunegan.yaml; each ``None`` = its defaults, the paper's CoMA setting):
        generator: ``{_target_: facegen.models.facetunegan.networks.Generator, channels, style_channels,
            content_dim, style_dim, mapping_hidden, content_hidden, style_hidden, decoder_hidden, output_init,
            decoder_skip, style_skip, content_skip}`` (see :class:`~facegen.models.facetunegan.networks.Generator`);
            the module passes the mesh hierarchy. A block without ``_target_`` means that class.
        discriminator: ``{_target_: facegen.models.facetunegan.networks.Discriminator, channels}``; the module
            passes the hierarchy and ``num_styles``.
        hierarchy: :class:`~facegen.models.facetunegan.config.HierarchyConfig` (``down_factors``,
            ``seq_length``, ``dilation``): the mesh hierarchy both networks share.
        loss: :class:`~facegen.models.facetunegan.config.LossConfig`: the weights of eq. (10), the Laplacian,
            R1 and paired terms and the ``loss_space``.
        optimizer: ``{_target_: torch.optim.Adam, _partial_: true, lr, weight_decay, betas}``, one instance per
            network; a mapping without ``_target_`` completes the default Adam.
        schedule: :class:`~facegen.models.facetunegan.config.ScheduleConfig` (``lr_decay_batches``,
            ``lr_final_fraction``): the optional half-cosine lr decay of both optimisers.
        evaluation: :class:`~facegen.models.facetunegan.config.EvaluationConfig` (``val_triplets``,
            ``eval_triplets``, ``seed``).

    The paired translation loss (``loss.lambda_pair > 0``) draws its targets from the trainer's datamodule's
    train split (``trainer.datamodule.collection_for("train")``, as :class:`~facegen.data.meshes.MeshDataModule`);
    samples whose pair does not exist (a subject without that expression) are left out. It teaches the decoder
    each identity's own way of performing an expression, which the unpaired losses cannot tell apart from the
    source's.

    Raises:
        FacegenError: ``template_vertices``/``mean``/``std`` are not all ``[V, 3]`` (``template_faces`` not
            ``[F, 3]``), or ``std`` has a non-positive entry.
        ConfigError: a block has an unknown key, a wrong type or an out-of-range value (names ``model.<block>.<key>``).
    """

    def __init__(
        self,
        template_vertices,
        template_faces,
        num_styles: int,
        style_names: Sequence[str],
        mean,
        std,
        hierarchy_cache_dir: str | os.PathLike | None = None,
        *,
        generator: Mapping[str, Any] | None = None,
        discriminator: Mapping[str, Any] | None = None,
        hierarchy: Mapping[str, Any] | HierarchyConfig | None = None,
        loss: Mapping[str, Any] | LossConfig | None = None,
        optimizer: Mapping[str, Any] | None = None,
        schedule: Mapping[str, Any] | ScheduleConfig | None = None,
        evaluation: Mapping[str, Any] | EvaluationConfig | None = None,
    ) -> None:
        super().__init__()
        self.generator_spec = network_spec(generator, GENERATOR_TARGET, "model.generator")
        self.discriminator_spec = network_spec(discriminator, DISCRIMINATOR_TARGET, "model.discriminator")
        self.hierarchy_config = block(HierarchyConfig, hierarchy, "model.hierarchy")
        self.loss_config = block(LossConfig, loss, "model.loss")
        self.optimizer_spec = optimizer_spec(optimizer, "model.optimizer")
        self.schedule_config = block(ScheduleConfig, schedule, "model.schedule")
        self.evaluation_config = block(EvaluationConfig, evaluation, "model.evaluation")
        self.num_styles = int(num_styles)
        hierarchy_cache_dir = None if hierarchy_cache_dir is None else str(hierarchy_cache_dir)
        # plain Python containers (Hydra passes ListConfig), so checkpoints load with weights_only=True
        self.save_hyperparameters({
            "num_styles": self.num_styles, "style_names": [str(n) for n in style_names],
            "hierarchy_cache_dir": hierarchy_cache_dir,
            "generator": self.generator_spec, "discriminator": self.discriminator_spec,
            "hierarchy": plain(self.hierarchy_config), "loss": plain(self.loss_config),
            "optimizer": self.optimizer_spec, "schedule": plain(self.schedule_config),
            "evaluation": plain(self.evaluation_config),
        }, ignore=list(_DATA_FIELDS))  # (Lightning compares the dict with every argument; arrays cannot be)
        self.automatic_optimization = False
        self.skipped_g_steps = 0
        self.skipped_d_steps = 0
        self._val_triplet_meshes: dict[str, np.ndarray] | None = None
        self._pair_bank: PairBank | None = None

        vertices = torch.as_tensor(np.asarray(template_vertices), dtype=torch.float32)
        faces = torch.as_tensor(np.asarray(template_faces), dtype=torch.long)
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        std = torch.as_tensor(np.asarray(std), dtype=torch.float32)
        assert_shape(vertices, ["V", 3], "FaceTuneGAN template_vertices", error=FacegenError, hint="mm")
        for name, value in (("mean", mean), ("std", std)):
            assert_shape(value, [vertices.shape[0], 3], f"FaceTuneGAN {name}", error=FacegenError,
                         hint="[V, 3] mm, one entry per template vertex")
        assert_shape(faces, ["F", 3], "FaceTuneGAN template_faces", error=FacegenError, hint="triangles")
        if not bool((std > 0).all()):
            raise FacegenError("FaceTuneGAN: std [V, 3] must be > 0 everywhere (clamp it in the datamodule)")
        self.register_buffer("template_vertices", vertices)
        self.register_buffer("template_faces", faces)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("edges", torch.as_tensor(unique_edges(faces.numpy())), persistent=False)
        # loss_space="mm": vertex distances weighted by std / mean(std), i.e. mm up to one global scale
        self.register_buffer("distance_weight", std / std.mean(), persistent=False)

        mesh_hierarchy = self._mesh_hierarchy(vertices, faces, hierarchy_cache_dir)
        self.generator = build_network(self.generator_spec, "model.generator", hierarchy=mesh_hierarchy)
        self.discriminator = build_network(self.discriminator_spec, "model.discriminator", hierarchy=mesh_hierarchy,
                                           num_styles=self.num_styles)

    def _mesh_hierarchy(self, vertices: torch.Tensor, faces: torch.Tensor, cache_dir: str | None):
        """The CoMA hierarchy of the template (``model.hierarchy``), cached in ``cache_dir``; a cache folder that
        cannot be written (a checkpoint from another machine) is skipped with a warning."""
        h = self.hierarchy_config
        kwargs = dict(factors=h.down_factors, seq_length=h.seq_length, dilation=h.dilation)
        try:
            return build_mesh_hierarchy(vertices.numpy(), faces.numpy(), cache_dir=cache_dir, **kwargs)
        except OSError as error:
            if cache_dir is None:
                raise
            log.warning("FaceTuneGAN: mesh hierarchy cache %s not usable (%s); building without it", cache_dir, error)
            return build_mesh_hierarchy(vertices.numpy(), faces.numpy(), cache_dir=None, **kwargs)

    # ---------------------------------------------------------------- units and inference (mm)
    def _check_meshes(self, x: torch.Tensor, name: str) -> None:
        assert_shape(x, ["B", self.template_vertices.shape[0], 3], name, error=FacegenError,
                     hint="meshes of the template's topology")

    def normalise(self, vertices_mm: torch.Tensor) -> torch.Tensor:
        """``[..., V, 3]`` mm -> per-vertex normalised coordinates."""
        return (vertices_mm - self.mean) / self.std

    def denormalise(self, vertices: torch.Tensor) -> torch.Tensor:
        """Per-vertex normalised ``[..., V, 3]`` -> mm (float32)."""
        return vertices.float() * self.std + self.mean

    @torch.no_grad()
    def reconstruct(self, vertices_mm: torch.Tensor) -> torch.Tensor:
        """``Dec(E_c(x), E_s(x))`` (eq. 3): ``[B, V, 3]`` mm -> ``[B, V, 3]`` mm.

        Raises:
            FacegenError: ``vertices_mm`` is not ``[B, V, 3]`` with the template's ``V``.
        """
        return self.translate(vertices_mm, vertices_mm)

    @torch.no_grad()
    def translate(self, content_mm: torch.Tensor, style_mm: torch.Tensor) -> torch.Tensor:
        """``Dec(E_c(x), E_s(s))`` (eq. 4): identity of ``content_mm``, expression of ``style_mm``.

        Args:
            content_mm, style_mm: ``[B, V, 3]`` mm.
        Returns:
            ``[B, V, 3]`` mm.
        Raises:
            FacegenError: an input is not ``[B, V, 3]`` with the template's ``V`` (or the batch sizes differ).
        """
        self._check_meshes(content_mm, "FaceTuneGAN.translate content_mm")
        assert_shape(style_mm, list(content_mm.shape), "FaceTuneGAN.translate style_mm", error=FacegenError,
                     hint="one style source per content mesh")
        return self.denormalise(self.generator(self.normalise(content_mm), self.normalise(style_mm)))

    def forward(self, content: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Generator on normalised meshes: ``[B, V, 3]`` (and style source ``[B, V, 3]``) -> ``[B, V, 3]``."""
        return self.generator(content, style)

    # ---------------------------------------------------------------- training
    def configure_optimizers(self):
        factory = optimizer_factory(self.optimizer_spec, "model.optimizer")
        optimizers = [factory(self.generator.parameters()), factory(self.discriminator.parameters())]
        if self.schedule_config.lr_decay_batches == 0:
            return optimizers
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor) for opt in optimizers]
        return optimizers, schedulers

    def lr_factor(self, batch: int) -> float:
        """Learning-rate factor after ``batch`` batches (``schedule.lr_decay_batches``): 1 -> ``lr_final_fraction``."""
        s = self.schedule_config
        progress = min(batch / s.lr_decay_batches, 1.0) if s.lr_decay_batches else 0.0
        return s.lr_final_fraction + (1.0 - s.lr_final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def pair_bank(self, collection) -> PairBank:
        """The paired loss's bank of ``collection`` (mm) on this module's device; see :func:`.pairs.pair_bank`."""
        return pair_bank(collection, self.normalise, self.num_styles, device=self.mean.device)

    def _fit_pair_bank(self) -> PairBank:
        """:meth:`pair_bank` of the trainer's datamodule's train split, built once per fit.

        Raises:
            FacegenError: the trainer has no datamodule with ``collection_for``.
        """
        if self._pair_bank is None:
            datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
            if not hasattr(datamodule, "collection_for"):
                raise FacegenError("FaceTuneGAN: loss.lambda_pair > 0 needs a datamodule with collection_for "
                                   "(MeshDataModule) attached to the trainer")
            self._pair_bank = self.pair_bank(datamodule.collection_for("train"))
        return self._pair_bank

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """One generator step, then one discriminator step (manual optimisation).

        The style source ``s`` of each content sample ``x`` is another sample of the same batch
        (the batch rolled by a random non-zero shift), with its expression label as style class.
        A step whose loss is NaN/inf on any process is skipped on all of them and counted in
        ``train/skipped_g_steps`` / ``train/skipped_d_steps``.
        """
        x, labels = batch["vertices"], batch["expression"]
        self._check_meshes(x, "batch['vertices']")
        batch_size = x.shape[0]
        shift = int(torch.randint(1, batch_size, ())) if batch_size > 1 else 0
        s, s_label = x.roll(shift, dims=0), labels.roll(shift, dims=0)
        opt_g, opt_d = self.optimizers()
        pair = None
        if self.loss_config.lambda_pair > 0:
            pair = pair_targets(self._fit_pair_bank(), batch["identity"], s_label)

        self.toggle_optimizer(opt_g)
        g_terms, x_t = generator_terms(self, x, s, s_label, pair)
        if not guarded_step(self, opt_g, g_terms["g_total"], self.generator):
            self.skipped_g_steps += 1
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)
        d_terms = discriminator_terms(self, s, s_label, x_t)
        # under float16 an overflowing R1 gradient is the GradScaler's to handle (it skips and rescales)
        guard = d_terms["d_adv"] if grad_scaler(self) is not None else d_terms["d_total"]
        if not guarded_step(self, opt_d, d_terms["d_total"], self.discriminator, guard=guard):
            self.skipped_d_steps += 1
        self.untoggle_optimizer(opt_d)
        if self.schedule_config.lr_decay_batches:
            for scheduler in self.lr_schedulers():   # manual optimisation: Lightning does not step them
                scheduler.step()

        metrics = {"rec_error_mm", "pair_error_mm", "d_real_acc", "d_fake_acc"}
        logged = {f"train/{k}" if k in metrics else f"train/loss_{k}": v.detach()
                  for k, v in {**g_terms, **d_terms}.items()}
        logged["train/skipped_g_steps"] = float(self.skipped_g_steps)
        logged["train/skipped_d_steps"] = float(self.skipped_d_steps)
        logged["train/lr"] = float(opt_g.param_groups[0]["lr"])
        self.log_dict(logged, on_step=True, on_epoch=False, batch_size=batch_size)

    # ---------------------------------------------------------------- validation and evaluation
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """``val/rec_error_mm``: mean AVD (eq. 11) between val meshes and their reconstructions, mm."""
        x = batch["vertices"]
        error = (self.denormalise(self.generator(x)) - self.denormalise(x)).norm(dim=-1).mean()
        self.log("val/rec_error_mm", error, on_epoch=True, sync_dist=True, batch_size=x.shape[0])

    def on_fit_start(self) -> None:
        self._val_triplet_meshes = None
        self._pair_bank = None

    def on_validation_epoch_end(self) -> None:
        """``val/transfer_error_mm``: expression transfer error (eq. 14) on seeded val triplets, mm.

        Needs a datamodule with ``collection_for`` (``MeshDataModule``). The triplets' meshes are
        gathered once per fit; every process computes the same value, so no synchronisation is
        needed. When the val split has no valid triplet (fewer than two subjects sharing an expression and
        a neutral mesh) the metric is not logged, and a warning says so once per fit.
        """
        datamodule = getattr(self.trainer, "datamodule", None)
        n_triplets, seed = self.evaluation_config.val_triplets, self.evaluation_config.seed
        if n_triplets <= 0 or not hasattr(datamodule, "collection_for"):
            return
        if self._val_triplet_meshes is None:
            collection = datamodule.collection_for("val")
            triplets = draw_triplets(collection.identity, collection.expression, n_triplets, seed=seed)
            self._val_triplet_meshes = triplet_meshes(collection, triplets, seed) if triplets else {}
            if not triplets and self.trainer.is_global_zero:
                log.warning("FaceTuneGAN: val/transfer_error_mm not computed: the val split has no (c, c', s) "
                            "triplet (%d identities)", len(np.unique(np.asarray(collection.identity))))
        if self._val_triplet_meshes:
            errors = transfer_errors(self, self._val_triplet_meshes)
            self.log("val/transfer_error_mm", float(np.mean(errors)), on_epoch=True, sync_dist=False)

    def evaluate_run(self, datamodule, split: str = "test") -> dict[str, list[dict[str, Any]]]:
        """The paper's evaluation tables (1-4) on ``split``; see :func:`evaluate_facetunegan`.

        Called by ``facegen.train`` after fitting and by ``facegen.evaluate``; runs in eval mode. A table
        that cannot be computed on ``split`` is one ``{"status": "not computed", "reason": ...}`` row (and a
        logged warning), so the metrics folder names it.
        """
        was_training = self.training
        self.eval()
        try:
            return evaluate_facetunegan(self, datamodule, split=split, n_triplets=self.evaluation_config.eval_triplets,
                                        seed=self.evaluation_config.seed)
        finally:
            self.train(was_training)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the data-derived arrays so :meth:`from_checkpoint` needs no datamodule."""
        checkpoint[_DATA_KEY] = {name: getattr(self, name).detach().cpu().clone() for name in _DATA_FIELDS}

    @classmethod
    def checkpoint_kwargs(cls, checkpoint: dict[str, Any], source: str) -> dict[str, Any]:
        """``template_vertices``, ``template_faces``, ``mean``, ``std`` from ``checkpoint["facetunegan_data"]``.

        Raises:
            CheckpointError: the entry (or one of its arrays) is missing: not a FaceTuneGAN checkpoint.
        """
        data = checkpoint.get(_DATA_KEY)
        missing = [name for name in _DATA_FIELDS if not isinstance(data, Mapping) or name not in data]
        if missing:
            raise CheckpointError(f"{source}: not a FaceTuneGAN checkpoint, missing {_DATA_KEY!r} arrays {missing}")
        return {name: torch.as_tensor(data[name]).cpu().numpy() for name in _DATA_FIELDS}

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: Any = "cpu", **overrides: Any) -> FaceTuneGAN:
        """Rebuild a trained model from a Lightning checkpoint alone (weights, template, statistics), in eval mode
        on ``map_location`` (a device; anything else: CPU). Old flat checkpoints are upgraded by
        :mod:`facegen.models.legacy`; the mesh hierarchy is rebuilt from the stored template (from
        ``hierarchy_cache_dir`` when that cache exists; ``hierarchy_cache_dir=None`` in ``overrides`` skips it).

        Raises:
            CheckpointError: the file is not a FaceTuneGAN checkpoint or its weights do not match.
        """
        model = super().from_checkpoint(path, map_location=map_location, **overrides)
        device = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
        return model.to(device).eval()
