"""FaceTuneGAN as a LightningModule: expression transfer between 3D faces of one topology.

Olivier et al., "FaceTuneGAN: Face Autoencoder for Convolutional Expression Transfer Using Neural
Generative Adversarial Networks", Computers & Graphics 2023. One generator step and one
discriminator step per batch (sec. 3.3), Adam(lr 1e-4, weight decay 5e-5), objective eq. (10) plus
a uniform Laplacian smoothing term on translated meshes. Options outside the paper, all off by default
and used by the CPU-budget experiment (conf/experiment/facetunegan_cpu30.yaml): a supervised
cross-identity translation loss (``lambda_pair``), a zero initialisation of the decoder's output layer
(``output_init``), linear skip paths (``decoder_skip``, ``style_skip``, ``content_skip``), mm-weighted
vertex distances (``loss_space``) and a cosine lr decay (``lr_decay_batches``); see the class docstring.

Units: batches hold per-vertex normalised coordinates ``(x_mm - mean) / std`` (``mean``/``std``
``[V, 3]`` mm from the training split). The networks, the reconstruction/cycle losses and the
discriminator work in that space; the Laplacian loss and every logged error are in millimetres.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from lightning.pytorch import LightningModule

from facegen.checkpoints import load
from facegen.errors import CheckpointError, FacegenError
from facegen.geometry import (
    build_mesh_hierarchy,
    uniform_laplacian_smoothing,
    unique_edges,
)
from facegen.metrics.mesh import draw_triplets
from facegen.models.facetunegan import losses
from facegen.models.facetunegan.evaluation import (
    evaluate_facetunegan,
    transfer_errors,
    triplet_meshes,
)
from facegen.models.facetunegan.networks import Discriminator, Generator
from facegen.models.gan import grad_scaler, guarded_step, r1_penalty

_DATA_KEY = "facetunegan_data"
_DATA_FIELDS = ("template_vertices", "template_faces", "mean", "std")


def _as_list(values: Sequence[int]) -> list[int]:
    return [int(v) for v in values]


class FaceTuneGAN(LightningModule):
    """FaceTuneGAN: content (identity) / style (expression) autoencoder trained adversarially.

    Data arguments (``MeshDataModule.model_kwargs()``):
        template_vertices: ``[V, 3]`` float32 template, mm.
        template_faces: ``[F, 3]`` int64 triangles.
        num_styles: number of expression classes; style_names: their names (index 0 = neutral).
        mean, std: ``[V, 3]`` mm, per-vertex normalisation of the batches.
        hierarchy_cache_dir: folder for the cached mesh hierarchy (None: no cache).

    Model arguments (conf/model/facetunegan.yaml):
        channels: content encoder / decoder SpiralBlock widths, one per down-sampling level.
        style_channels, disc_channels: style encoder and discriminator SpiralBlock widths.
        content_dim, style_dim: sizes of ``content_code`` and ``style_code``.
        mapping_hidden: hidden widths of the style mapping ``M``.
        content_hidden, style_hidden, decoder_hidden: MLP hidden widths.
        down_factors: vertex down-sampling factor per hierarchy level; seq_length, dilation: spirals.
        lambda_rec, lambda_cycle, lambda_srec, lambda_adv, lambda_feat, lambda_lap: loss weights of
            eq. (10) (paper: adv 1, feat 1, srec 0.4, rec and cycle 1) and of the Laplacian term.
        r1_gamma: R1 penalty weight; the discriminator loss adds ``r1_gamma / 2 * E||grad D||^2``.
        lambda_pair: weight of the paired translation loss (not in the paper, which trains unpaired;
            default 0 = off): ``E||x_t - x_{c(x), label(s)}||`` (normalised space, as eq. 5) between the
            translation ``x_t = Dec(E_c(x), E_s(s))`` and a training mesh of ``x``'s identity with ``s``'s
            expression label, drawn at random from the datamodule's train split (``trainer.datamodule``
            must have ``collection_for``, as :class:`~facegen.data.meshes.MeshDataModule`). Samples whose
            pair does not exist (a subject without that expression) are left out. This is the eq. (14)
            protocol used as a training signal; it teaches the decoder each identity's own way of
            performing an expression, which the unpaired losses cannot tell apart from the source's.
        output_init: ``"kaiming"`` (paper sec. 4.2, every layer) or ``"zero"``: the decoder's output
            SpiralConv starts at zero, so the generator starts at the training mean face (normalised 0)
            instead of high-frequency noise.
        decoder_skip: a linear path from the content code to the output mesh, started at zero (not in
            the paper; see :class:`~facegen.models.facetunegan.networks.Decoder`).
        style_skip: a linear path from the style code to the output mesh, started at zero (not in the paper;
            an additive expression offset under the AdaIN path, see the same class).
        content_skip: a linear path from the input mesh to the content code, started at zero (not in the
            paper; see :class:`~facegen.models.facetunegan.networks.ContentEncoder`). The style encoder
            has none: a linear read-out there carries the source's identity into the style code.
        loss_space: where the vertex distances of eqs. (5), (6) and the paired loss are measured:
            ``"normalised"`` (default; the batches' per-vertex normalised space) or ``"mm"``: each vertex's
            error is scaled by ``std / mean(std)``, so the losses are millimetres divided by one global
            constant (the metric's weighting of vertices, with the normalised losses' overall scale).
            In normalised space a vertex that varies little (std 0.7 mm) weighs as much as one that moves
            10 mm, while the errors reported in mm are dominated by the mobile ones.
        lr, weight_decay, betas: Adam settings of both optimisers.
        lr_decay_batches: 0 (paper: constant lr) or N: both learning rates follow a half cosine from ``lr`` to
            ``lr_final_fraction * lr`` over the first N batches and stay there (not in the paper; a short run's
            last iterate is then not the noisy one of a constant lr).
        lr_final_fraction: see ``lr_decay_batches``.
        val_triplets: ``(c, c', s)`` triplets drawn from the val split for ``val/transfer_error_mm``.
        eval_triplets: triplets of the final evaluation (:meth:`evaluate_run`, paper Tables 3-4).
        seed: seed of the validation and evaluation triplets.

    Raises:
        FacegenError: ``mean``/``std`` do not match the template's ``[V, 3]``, or ``std`` has a
            non-positive entry.
    """

    def __init__(
        self,
        template_vertices,
        template_faces,
        num_styles: int,
        style_names: Sequence[str],
        mean,
        std,
        hierarchy_cache_dir: str | Path | None = None,
        channels: Sequence[int] = (16, 32, 32, 64),
        style_channels: Sequence[int] = (16, 32, 32, 64),
        disc_channels: Sequence[int] = (16, 32, 32, 64),
        content_dim: int = 4,
        style_dim: int = 4,
        mapping_hidden: Sequence[int] = (128, 128, 16),
        content_hidden: Sequence[int] = (),
        style_hidden: Sequence[int] = (),
        decoder_hidden: Sequence[int] = (),
        down_factors: Sequence[int] = (4, 4, 4, 4),
        seq_length: int = 9,
        dilation: int = 1,
        lambda_rec: float = 1.0,
        lambda_cycle: float = 1.0,
        lambda_srec: float = 0.4,
        lambda_adv: float = 1.0,
        lambda_feat: float = 1.0,
        lambda_lap: float = 0.1,
        r1_gamma: float = 10.0,
        lambda_pair: float = 0.0,
        output_init: str = "kaiming",
        decoder_skip: bool = False,
        style_skip: bool = False,
        content_skip: bool = False,
        loss_space: str = "normalised",
        lr: float = 1e-4,
        weight_decay: float = 5e-5,
        betas: Sequence[float] = (0.9, 0.999),
        lr_decay_batches: int = 0,
        lr_final_fraction: float = 0.05,
        val_triplets: int = 64,
        eval_triplets: int = 500,
        seed: int = 0,
    ) -> None:
        super().__init__()
        # plain Python containers (Hydra passes ListConfig), so checkpoints load with weights_only=True
        style_names = [str(n) for n in style_names]
        channels, style_channels, disc_channels = _as_list(channels), _as_list(style_channels), _as_list(disc_channels)
        mapping_hidden, content_hidden = _as_list(mapping_hidden), _as_list(content_hidden)
        style_hidden, decoder_hidden = _as_list(style_hidden), _as_list(decoder_hidden)
        down_factors = _as_list(down_factors)
        betas = [float(b) for b in betas]
        hierarchy_cache_dir = None if hierarchy_cache_dir is None else str(hierarchy_cache_dir)
        self.save_hyperparameters(ignore=list(_DATA_FIELDS))
        self.automatic_optimization = False
        self.skipped_g_steps = 0
        self.skipped_d_steps = 0
        self._val_triplet_meshes: dict[str, np.ndarray] | None = None
        self._pair_bank: dict[str, torch.Tensor] | None = None
        if output_init not in ("kaiming", "zero"):
            raise FacegenError(f"FaceTuneGAN: output_init={output_init!r}, expected 'kaiming' or 'zero'")
        if loss_space not in ("normalised", "mm"):
            raise FacegenError(f"FaceTuneGAN: loss_space={loss_space!r}, expected 'normalised' or 'mm'")
        if lambda_pair < 0:
            raise FacegenError(f"FaceTuneGAN: lambda_pair={lambda_pair} must be >= 0")
        if lr_decay_batches < 0 or not 0 < lr_final_fraction <= 1:
            raise FacegenError(f"FaceTuneGAN: lr_decay_batches={lr_decay_batches} must be >= 0 and "
                               f"lr_final_fraction={lr_final_fraction} in (0, 1]")

        vertices = torch.as_tensor(np.asarray(template_vertices), dtype=torch.float32)
        faces = torch.as_tensor(np.asarray(template_faces), dtype=torch.long)
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        std = torch.as_tensor(np.asarray(std), dtype=torch.float32)
        if mean.shape != vertices.shape or std.shape != vertices.shape or vertices.shape[-1:] != (3,):
            raise FacegenError(
                f"FaceTuneGAN: template_vertices, mean and std must all be [V, 3] mm; got "
                f"{tuple(vertices.shape)}, {tuple(mean.shape)}, {tuple(std.shape)}"
            )
        if not bool((std > 0).all()):
            raise FacegenError("FaceTuneGAN: std [V, 3] must be > 0 everywhere (clamp it in the datamodule)")
        self.register_buffer("template_vertices", vertices)
        self.register_buffer("template_faces", faces)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("edges", torch.as_tensor(unique_edges(faces.numpy())), persistent=False)
        # loss_space="mm": vertex distances weighted by std / mean(std), i.e. mm up to one global scale
        self.register_buffer("distance_weight", std / std.mean(), persistent=False)

        hierarchy = build_mesh_hierarchy(vertices.numpy(), faces.numpy(), factors=down_factors,
                                         seq_length=seq_length, dilation=dilation, cache_dir=hierarchy_cache_dir)
        self.generator = Generator(hierarchy, channels, style_channels, content_dim, style_dim, mapping_hidden,
                                   content_hidden, style_hidden, decoder_hidden, decoder_skip,
                                   style_skip, content_skip)
        self.discriminator = Discriminator(hierarchy, disc_channels, num_styles)
        if output_init == "zero":
            torch.nn.init.zeros_(self.generator.decoder.out_conv.layer.weight)
            torch.nn.init.zeros_(self.generator.decoder.out_conv.layer.bias)

    # ---------------------------------------------------------------- units and inference (mm)
    def normalise(self, vertices_mm: torch.Tensor) -> torch.Tensor:
        """``[B, V, 3]`` mm -> per-vertex normalised coordinates."""
        return (vertices_mm - self.mean) / self.std

    def denormalise(self, vertices: torch.Tensor) -> torch.Tensor:
        """Per-vertex normalised ``[B, V, 3]`` -> mm (float32)."""
        return vertices.float() * self.std + self.mean

    @torch.no_grad()
    def reconstruct(self, vertices_mm: torch.Tensor) -> torch.Tensor:
        """``Dec(E_c(x), E_s(x))`` (eq. 3): ``[B, V, 3]`` mm -> ``[B, V, 3]`` mm."""
        return self.translate(vertices_mm, vertices_mm)

    @torch.no_grad()
    def translate(self, content_mm: torch.Tensor, style_mm: torch.Tensor) -> torch.Tensor:
        """``Dec(E_c(x), E_s(s))`` (eq. 4): identity of ``content_mm``, expression of ``style_mm``.

        Args:
            content_mm, style_mm: ``[B, V, 3]`` mm.
        Returns:
            ``[B, V, 3]`` mm.
        """
        return self.denormalise(self.generator(self.normalise(content_mm), self.normalise(style_mm)))

    def forward(self, content: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Generator on normalised meshes: ``[B, V, 3]`` (and style source ``[B, V, 3]``) -> ``[B, V, 3]``."""
        return self.generator(content, style)

    # ---------------------------------------------------------------- training
    def configure_optimizers(self):
        hp = self.hparams
        kwargs = dict(lr=hp.lr, weight_decay=hp.weight_decay, betas=tuple(hp.betas))
        optimizers = [torch.optim.Adam(self.generator.parameters(), **kwargs),
                      torch.optim.Adam(self.discriminator.parameters(), **kwargs)]
        if hp.lr_decay_batches == 0:
            return optimizers
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor) for opt in optimizers]
        return optimizers, schedulers

    def lr_factor(self, batch: int) -> float:
        """Learning-rate factor after ``batch`` batches (``lr_decay_batches``): 1 -> ``lr_final_fraction``."""
        hp = self.hparams
        progress = min(batch / hp.lr_decay_batches, 1.0) if hp.lr_decay_batches else 0.0
        return hp.lr_final_fraction + (1.0 - hp.lr_final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _build_pair_bank(self) -> dict[str, torch.Tensor] | None:
        """:meth:`pair_bank` of the trainer's datamodule's train split, or ``None`` without ``collection_for``."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if not hasattr(datamodule, "collection_for"):
            return None
        return self.pair_bank(datamodule.collection_for("train"))

    def pair_bank(self, collection) -> dict[str, torch.Tensor]:
        """Normalised meshes of ``collection`` and a padded ``(identity, expression) -> rows`` table (``lambda_pair``).

        Args:
            collection: a :class:`~facegen.data.meshes.MeshCollection` (mm), normally the train split.
        Returns:
            ``vertices [N, V, 3]`` (normalised, on this module's device), ``rows [I, S, K]`` int64 (row
            indices into ``vertices``, padded with 0) and ``counts [I, S]`` int64 (rows per pair; 0 = missing).
        """
        identity = np.asarray(collection.identity, dtype=np.int64)
        expression = np.asarray(collection.expression, dtype=np.int64)
        n_id, n_exp = int(identity.max(initial=-1)) + 1, max(int(expression.max(initial=-1)) + 1,
                                                            self.hparams.num_styles)
        groups: dict[tuple[int, int], list[int]] = {}
        for row, key in enumerate(zip(identity.tolist(), expression.tolist())):
            groups.setdefault(key, []).append(row)
        width = max((len(r) for r in groups.values()), default=1)
        rows = torch.zeros(n_id, n_exp, width, dtype=torch.long)
        counts = torch.zeros(n_id, n_exp, dtype=torch.long)
        for (c, e), members in groups.items():
            rows[c, e, :len(members)] = torch.as_tensor(members)
            counts[c, e] = len(members)
        vertices = self.normalise(torch.as_tensor(np.asarray(collection.vertices, dtype=np.float32),
                                                  device=self.mean.device))
        return {"vertices": vertices, "rows": rows.to(self.mean.device), "counts": counts.to(self.mean.device)}

    def _pair_targets(self, identity: torch.Tensor, s_label: torch.Tensor,
                      bank: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """For content identities ``[B]`` and style labels ``[B]``: a random mesh of each pair from
        ``bank`` (default: the fit's :meth:`pair_bank`), ``[B, V, 3]`` normalised, and the mask ``[B]``
        of pairs that exist (identities outside the bank count as missing)."""
        bank = self._pair_bank if bank is None else bank
        identity, s_label = identity.long(), s_label.long()
        inside = identity < bank["counts"].shape[0]
        c = torch.where(inside, identity, torch.zeros_like(identity))
        counts = bank["counts"][c, s_label] * inside
        pick = (torch.rand(identity.shape, device=identity.device) * counts.clamp(min=1)).long()
        rows = bank["rows"][c, s_label, pick]
        return bank["vertices"][rows], counts > 0

    def _distance(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Vertex distance loss between normalised ``[B, V, 3]`` meshes in ``loss_space`` (see the class)."""
        if self.hparams.loss_space == "mm":
            return losses.vertex_distance_loss(prediction * self.distance_weight, target * self.distance_weight)
        return losses.vertex_distance_loss(prediction, target)

    def _generator_step(self, x: torch.Tensor, s: torch.Tensor, s_label: torch.Tensor,
                        pair: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Generator terms of eq. (10) for content ``x`` and style source ``s`` (normalised ``[B, V, 3]``).

        ``pair``: optional ``(targets [B, V, 3], mask [B])`` of the paired translation loss
        (``lambda_pair``, see the class docstring).

        Returns ``(terms, x_t)``: the loss terms ``rec``, ``cycle``, ``srec``, ``adv``, ``feat``,
        ``lap`` (mm) (and ``pair``), their weighted sum ``g_total``, ``rec_error_mm`` (and
        ``pair_error_mm``, the paired translation error in mm; both without gradient),
        and the translated meshes ``x_t`` (normalised, detached) for the discriminator step.
        """
        g, d, hp = self.generator, self.discriminator, self.hparams
        content_x = g.encode_content(x)
        style_x, style_s = g.encode_style(x), g.encode_style(s)
        x_r = g.decode(content_x, style_x)                                   # eq. (3)
        x_t = g.decode(content_x, style_s)                                   # eq. (4)
        x_cycle = g.decode(g.encode_content(x_t), style_x)
        style_t = g.encode_style(x_t)
        logits_t, features_t = d(x_t)
        features_r = d(x_r)[1]
        with torch.no_grad():
            features_x, features_s = d(x)[1], d(s)[1]
        x, x_r, x_cycle = x.float(), x_r.float(), x_cycle.float()
        terms = {
            "rec": self._distance(x_r, x),                                                        # eq. (5)
            "cycle": self._distance(x_cycle, x),                                                  # eq. (6)
            "srec": losses.style_reconstruction_loss(style_t.float(), style_s.detach().float()),  # eq. (7)
            "adv": losses.generator_adversarial_loss(d.select(logits_t.float(), s_label)),        # eq. (8)
            "feat": losses.feature_matching_loss(features_r.float(), features_x.float(),
                                                 features_t.float(), features_s.float()),        # eq. (9)
            "lap": uniform_laplacian_smoothing(self.denormalise(x_t), self.edges),                # mm
        }
        if pair is not None:
            targets, mask = pair
            terms["pair"] = (self._distance(x_t.float()[mask], targets[mask].float())
                             if bool(mask.any()) else x_t.float().sum() * 0.0)
        terms["g_total"] = sum(getattr(hp, f"lambda_{name}") * value for name, value in terms.items())
        with torch.no_grad():
            terms["rec_error_mm"] = (self.denormalise(x_r) - self.denormalise(x)).norm(dim=-1).mean()
            if pair is not None and bool(pair[1].any()):      # the eq. (14) error on training pairs, mm
                terms["pair_error_mm"] = (self.denormalise(x_t[pair[1]]) - self.denormalise(pair[0][pair[1]])
                                          ).norm(dim=-1).mean()
        return terms, x_t.detach()

    def _discriminator_step(self, s: torch.Tensor, s_label: torch.Tensor, x_t: torch.Tensor) -> dict[str, torch.Tensor]:
        """Discriminator terms: eq. (8) on real style sources ``s`` and translations ``x_t`` (both
        scored for class ``s_label``), the R1 penalty on ``s``, their sum ``d_total``, and the
        real/fake accuracies ``d_real_acc``, ``d_fake_acc`` (no gradient)."""
        d, hp = self.discriminator, self.hparams
        real = s.detach().requires_grad_(hp.r1_gamma > 0)
        real_logits = d.select(d(real)[0].float(), s_label)
        fake_logits = d.select(d(x_t)[0].float(), s_label)
        terms = {"d_adv": losses.discriminator_adversarial_loss(real_logits, fake_logits)}
        if hp.r1_gamma > 0:
            terms["r1"] = r1_penalty(real, real_logits, grad_scaler(self)).mean()
        terms["d_total"] = terms["d_adv"] + 0.5 * hp.r1_gamma * terms.get("r1", 0.0)
        terms["d_real_acc"] = (real_logits.detach() > 0).float().mean()
        terms["d_fake_acc"] = (fake_logits.detach() < 0).float().mean()
        return terms

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """One generator step, then one discriminator step (manual optimisation).

        The style source ``s`` of each content sample ``x`` is another sample of the same batch
        (the batch rolled by a random non-zero shift), with its expression label as style class.
        A step whose loss is NaN/inf on any process is skipped on all of them and counted in
        ``train/skipped_g_steps`` / ``train/skipped_d_steps``.
        """
        x, labels = batch["vertices"], batch["expression"]
        batch_size = x.shape[0]
        shift = int(torch.randint(1, batch_size, ())) if batch_size > 1 else 0
        s, s_label = x.roll(shift, dims=0), labels.roll(shift, dims=0)
        opt_g, opt_d = self.optimizers()
        pair = None
        if self.hparams.lambda_pair > 0:
            if self._pair_bank is None:
                self._pair_bank = self._build_pair_bank()
            if self._pair_bank is None:
                raise FacegenError("FaceTuneGAN: lambda_pair > 0 needs a datamodule with collection_for "
                                   "(MeshDataModule) attached to the trainer")
            pair = self._pair_targets(batch["identity"], s_label)

        self.toggle_optimizer(opt_g)
        g_terms, x_t = self._generator_step(x, s, s_label, pair)
        if not guarded_step(self, opt_g, g_terms["g_total"], self.generator):
            self.skipped_g_steps += 1
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)
        d_terms = self._discriminator_step(s, s_label, x_t)
        # under float16 an overflowing R1 gradient is the GradScaler's to handle (it skips and rescales)
        guard = d_terms["d_adv"] if grad_scaler(self) is not None else d_terms["d_total"]
        if not guarded_step(self, opt_d, d_terms["d_total"], self.discriminator, guard=guard):
            self.skipped_d_steps += 1
        self.untoggle_optimizer(opt_d)
        if self.hparams.lr_decay_batches:
            for scheduler in self.lr_schedulers():   # manual optimisation: Lightning does not step them
                scheduler.step()

        metrics = {"rec_error_mm", "pair_error_mm", "d_real_acc", "d_fake_acc"}
        logged = {f"train/{k}" if k in metrics else f"train/loss_{k}": v.detach()
                  for k, v in {**g_terms, **d_terms}.items()}
        logged["train/skipped_g_steps"] = float(self.skipped_g_steps)
        logged["train/skipped_d_steps"] = float(self.skipped_d_steps)
        logged["train/lr"] = float(opt_g.param_groups[0]["lr"])
        self.log_dict(logged, on_step=True, on_epoch=False, batch_size=batch_size)

    # ---------------------------------------------------------------- validation
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
        needed. Skipped when the val split has no valid triplet (fewer than two subjects).
        """
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.hparams.val_triplets <= 0 or not hasattr(datamodule, "collection_for"):
            return
        if self._val_triplet_meshes is None:
            collection = datamodule.collection_for("val")
            triplets = draw_triplets(collection.identity, collection.expression, self.hparams.val_triplets,
                                     seed=self.hparams.seed)
            self._val_triplet_meshes = triplet_meshes(collection, triplets, self.hparams.seed) if triplets else {}
        if self._val_triplet_meshes:
            errors = transfer_errors(self, self._val_triplet_meshes)
            self.log("val/transfer_error_mm", float(np.mean(errors)), on_epoch=True, sync_dist=False)

    def evaluate_run(self, datamodule, split: str = "test") -> dict[str, list[dict[str, Any]]]:
        """The paper's evaluation tables (1-4) on ``split``; see :func:`evaluate_facetunegan`.

        Called by ``facegen.train`` after fitting and by ``facegen.evaluate``; runs in eval mode.
        """
        was_training = self.training
        self.eval()
        try:
            return evaluate_facetunegan(self, datamodule, split=split, n_triplets=self.hparams.eval_triplets,
                                        seed=self.hparams.seed)
        finally:
            self.train(was_training)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the data-derived arrays so :meth:`from_checkpoint` needs no datamodule."""
        checkpoint[_DATA_KEY] = {name: getattr(self, name).detach().cpu().clone() for name in _DATA_FIELDS}

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: Any = "cpu") -> FaceTuneGAN:
        """Rebuild a trained model from a Lightning checkpoint alone (weights, template, statistics).

        The mesh hierarchy is rebuilt from the stored template (from ``hierarchy_cache_dir`` when
        that cache still exists). Returns the model in eval mode.

        Raises:
            CheckpointError: the file is not a FaceTuneGAN checkpoint (missing keys) or does not match.
        """
        checkpoint = load(path, map_location=map_location)
        missing = [k for k in ("state_dict", "hyper_parameters", _DATA_KEY) if k not in checkpoint]
        if missing:
            raise CheckpointError(f"{path}: not a FaceTuneGAN checkpoint, missing keys {missing}")
        data = {name: value.cpu().numpy() for name, value in checkpoint[_DATA_KEY].items()}
        model = cls(**data, **checkpoint["hyper_parameters"])
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as err:
            raise CheckpointError(f"{path}: weights do not match the stored hyperparameters: {err}") from err
        return model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval()
