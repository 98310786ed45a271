"""FaceTuneGAN's config blocks (``model.hierarchy``, ``model.loss``, ``model.schedule``, ``model.evaluation``) and
the defaults of its network and optimiser blocks (``model.generator``, ``model.discriminator``, ``model.optimizer``).

Defaults are the paper's CoMA setting (Olivier et al. 2023, sec. 4.2 and appendix A) and the constructor
defaults of facegen before the grouped constructors; conf/model/facetunegan.yaml sets the sizes of the
procedural default data. Options outside the paper are off by default (``lambda_pair = 0``,
``loss_space = "normalised"``, ``lr_decay_batches = 0``; the generator's ``output_init`` and skip paths in
:class:`~facegen.models.facetunegan.networks.Generator`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from torch import nn

from facegen.config.blocks import at_least
from facegen.config.spec import build, complete
from facegen.errors import ConfigError

GENERATOR_TARGET = "facegen.models.facetunegan.networks.Generator"
DISCRIMINATOR_TARGET = "facegen.models.facetunegan.networks.Discriminator"
# the paper's optimiser (sec. 4.2): Adam, lr 1e-4, weight decay 5e-5, PyTorch's default betas
DEFAULT_OPTIMIZER: dict[str, Any] = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1.0e-4,
                                     "weight_decay": 5.0e-5, "betas": [0.9, 0.999]}


@dataclass(frozen=True)
class HierarchyConfig:
    """The CoMA mesh hierarchy both networks run on (:func:`facegen.geometry.build_mesh_hierarchy`).

    Attributes:
        down_factors: vertex down-sampling factor per level (``ceil(V_i / f)`` vertices kept); a network with
            ``n`` SpiralBlocks uses the first ``n`` levels.
        seq_length: spiral length ``L`` (vertices per spiral, the vertex itself first; paper sec. 4.2: 9).
        dilation: spiral dilation (paper: 1, none).
    """

    down_factors: tuple[int, ...] = (4, 4, 4, 4)
    seq_length: int = 9
    dilation: int = 1

    def check(self, where: str) -> None:
        if not self.down_factors or min(self.down_factors) < 1:
            raise ConfigError(f"{where}.down_factors: expected one factor >= 1 per level, got {list(self.down_factors)}")
        if self.seq_length < 1 or self.dilation < 1:
            raise ConfigError(f"{where}: seq_length={self.seq_length} and dilation={self.dilation} must be >= 1")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the objective, eq. (10), plus the Laplacian, R1 and paired terms (dimensionless).

    Attributes:
        lambda_rec, lambda_cycle: reconstruction (eq. 5) and cycle (eq. 6) vertex distances (paper: 1, 1).
        lambda_srec: style-code reconstruction, eq. (7) (paper: 0.4).
        lambda_adv, lambda_feat: adversarial (eq. 8) and feature-matching (eq. 9) terms (paper: 1, 1).
        lambda_lap: uniform Laplacian smoothing of translated meshes, per mm (not given in the paper).
        r1_gamma: R1 weight; the discriminator loss adds ``r1_gamma / 2 * E||grad D(real)||^2`` (FUNIT's value).
        lambda_pair: paired translation loss (not in the paper, which trains unpaired; 0 = off):
            ``E||x_t - x_{c(x), label(s)}||`` (as eq. 5) between the translation ``x_t = Dec(E_c(x), E_s(s))`` and
            a training mesh of ``x``'s identity with ``s``'s expression label (see
            :mod:`facegen.models.facetunegan.pairs`); needs a datamodule with ``collection_for``.
        loss_space: where the vertex distances of eqs. (5), (6) and the paired loss are measured:
            ``"normalised"`` (paper; per-vertex normalised coordinates) or ``"mm"`` (each vertex's error scaled by
            ``std / mean(std)``: millimetres over one global constant, the metric's weighting of vertices).
    """

    lambda_rec: float = 1.0
    lambda_cycle: float = 1.0
    lambda_srec: float = 0.4
    lambda_adv: float = 1.0
    lambda_feat: float = 1.0
    lambda_lap: float = 0.1
    r1_gamma: float = 10.0
    lambda_pair: float = 0.0
    loss_space: Literal["normalised", "mm"] = "normalised"

    def check(self, where: str) -> None:
        at_least(where, 0, **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "loss_space"})

    def weight(self, term: str) -> float:
        """The weight ``lambda_<term>`` of a generator loss term (``rec``, ``cycle``, ..., ``pair``)."""
        return getattr(self, f"lambda_{term}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule of both optimisers (not in the paper, which keeps the lr constant).

    Attributes:
        lr_decay_batches: 0 (constant lr) or N: a half cosine from the optimiser's ``lr`` to
            ``lr_final_fraction * lr`` over the first N batches, constant afterwards.
        lr_final_fraction: see ``lr_decay_batches``; in (0, 1].
    """

    lr_decay_batches: int = 0
    lr_final_fraction: float = 0.05

    def check(self, where: str) -> None:
        if self.lr_decay_batches < 0:
            raise ConfigError(f"{where}.lr_decay_batches: must be >= 0, got {self.lr_decay_batches}")
        if not 0 < self.lr_final_fraction <= 1:
            raise ConfigError(f"{where}.lr_final_fraction: must be in (0, 1], got {self.lr_final_fraction}")


@dataclass(frozen=True)
class EvaluationConfig:
    """Validation and final evaluation (paper sec. 4.3).

    Attributes:
        val_triplets: ``(c, c', s)`` triplets drawn from the val split for ``val/transfer_error_mm`` (0 = off).
        eval_triplets: triplets of the final evaluation (Tables 3-4, :meth:`FaceTuneGAN.evaluate_run`).
        seed: seed of the validation and evaluation triplets and of the representative meshes.
    """

    val_triplets: int = 64
    eval_triplets: int = 500
    seed: int = 0

    def check(self, where: str) -> None:
        at_least(where, 0, val_triplets=self.val_triplets, eval_triplets=self.eval_triplets)


def network_spec(value: Mapping[str, Any] | None, default_target: str, where: str) -> dict[str, Any]:
    """A network block as a plain dict with a trusted ``_target_`` (``default_target`` where it has none).

    Raises:
        ConfigError: not a mapping, a ``_partial_`` key (the module builds the network), or an untrusted target.
    """
    spec = complete(value, {"_target_": default_target}, where)
    if "_partial_" in spec:
        raise ConfigError(f"{where}._partial_: not used in a network block (the module builds the network)")
    return spec


def optimizer_spec(value: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """The optimiser block as a plain dict: without ``_target_`` it completes :data:`DEFAULT_OPTIMIZER`
    (``{"lr": 1e-3}`` = the default Adam with lr 1e-3); with one it is used as given.

    Raises:
        ConfigError: not a mapping, or an untrusted target.
    """
    return complete(value, DEFAULT_OPTIMIZER, where)


def build_network(spec: Mapping[str, Any], where: str, **data: Any) -> nn.Module:
    """The network of a block from :func:`network_spec`, called with the data-derived arguments ``data``
    (the mesh hierarchy, ``num_styles``), which are objects and so are passed outside Hydra's config.

    Raises:
        ConfigError: an untrusted target, an unknown or ill-typed keyword (names ``where``), or a target that
            does not build an ``nn.Module``.
    """
    factory = build({**spec, "_partial_": True}, where)
    try:
        network = factory(**data)
    except (TypeError, ConfigError) as error:
        raise ConfigError(f"{where}: {error}") from None
    if not isinstance(network, nn.Module):
        raise ConfigError(f"{where}: {spec['_target_']!r} built a {type(network).__name__}, not an nn.Module")
    return network
