"""The embedded default mesh data: identities x FaceScape expressions of the procedural face.

Meshes come from :class:`facegen.morphable.ProceduralFaceModel` (no files, deterministic from the
seeds, generated in seconds): ``n_identities`` random identities (coefficients ``N(0, 1)``) each
performing every expression of the model's ``expression_presets`` that has a FaceScape name, in
FaceScape order with ``neutral`` first, ``samples_per_expression`` times with a per-sample intensity
jitter and coefficient noise (see :func:`facegen.data.mesh_sources.sample_morphable`) so every
class has within-class variation.

Expression style (``style_strength > 0``, on in ``conf/data/synthetic_meshes.yaml``): real people
perform one expression differently (how far they open the jaw, how asymmetric their smile is, which
muscles dominate). Each identity gets its own gain per rig control, a smooth function of its identity
coefficients (:class:`IdentityStyle`), and performs every expression with its controls scaled by
those gains. The rig itself (:class:`facegen.morphable.ProceduralFaceModel`) is unchanged. A mesh
of identity ``c`` with expression ``s`` is therefore ``c`` performing ``s`` in ``c``'s own style,
which is also the ground truth of the expression transfer protocol (FaceTuneGAN eq. 14): copying a
source identity's deformation (deformation transfer, or adding its offsets) carries the source's
style over and is measurably wrong, while the target's style can be predicted from its neutral face.

Split: whole identities (``split_by="identity"``), so val and test identities are never seen in
training; expression transfer is evaluated on unseen faces.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import torch

from facegen.data.collection import MeshCollection
from facegen.data.mesh_sources import (
    Allocator,
    assign_splits,
    sample_morphable,
    split_groups,
)
from facegen.errors import DatasetLayoutError
from facegen.morphable import FACESCAPE_EXPRESSIONS, ProceduralFaceModel


def expression_table(presets: dict[str, torch.Tensor], k_exp: int) -> dict[str, torch.Tensor]:
    """The model's presets with FaceScape names, in FaceScape order, ``neutral`` (zeros) first.

    Raises:
        DatasetLayoutError: fewer than 2 FaceScape expressions among the presets.
    """
    table = {"neutral": torch.zeros(k_exp)}
    table.update({name: presets[name] for name in FACESCAPE_EXPRESSIONS[1:] if name in presets})
    if len(table) < 2:
        raise DatasetLayoutError(
            f"ProceduralFaceModel.expression_presets {sorted(presets)} has no FaceScape expression names "
            f"(expected names from {list(FACESCAPE_EXPRESSIONS)})"
        )
    return table


COACTIVATED = ("jaw_open", "brow_inner_up", "brow_outer_up", "brow_lower", "blink_L", "blink_R", "nose_wrinkle",
               "upper_lip_raise", "cheek_puff", "lip_press")
"""Rig controls a person may habitually add to other expressions (:class:`IdentityStyle` co-activation)."""


class IdentityStyle(torch.nn.Module):
    """Identity-specific expression style: per-control gains that are a smooth function of identity.

    ``gains(id) = exp(strength * tanh(z))`` with ``z = (id @ P) @ A`` ``[B, K_exp]``: ``P [K_id, rank]``
    has orthonormal columns (so ``id @ P ~ N(0, I_rank)`` for ``id ~ N(0, I)``) and ``A [rank, K_exp]``
    has unit-norm columns (so every ``z_k ~ N(0, 1)``). A left control and its right twin (``smile_L``
    / ``smile_R``, ``blink_L`` / ``blink_R``...) share ``correlation`` of their direction, so faces
    are mostly, not exactly, symmetric in their expressions. Gains lie in ``[exp(-strength), exp(strength)]``;
    ``strength = 0`` gives gains 1 (no style). ``P`` and ``A`` are drawn from ``seed`` and shared by
    all identities (one identity -> style relation per dataset).

    Co-activation (``coactivation > 0``): some people raise their brows when they open the mouth, others
    squint when they smile. Each identity adds ``h(id) * max_k c_k`` to the controls ``c`` of every
    expression, ``h(id) = coactivation * relu(z')`` with ``z' = (id @ P) @ A'`` built like ``z`` (its own
    unit-norm directions ``A'``), on the controls of :data:`COACTIVATED` only. The neutral face (all
    controls 0) has none.

    The wrapped model's :meth:`vertices` becomes ``model.vertices(id, gains(id) * exp + h(id) * max(exp))``:
    amplitude (all gains up or down), asymmetry (left vs right gains), dominance (which controls of a
    preset are strong) and habitual co-activations all vary per identity.

    Args:
        model: a :class:`facegen.morphable.MorphableModel` with ``exp_names``.
        strength: log-gain amplitude (0.5: gains in [0.61, 1.65]).
        rank: number of identity directions the style depends on (1..K_id).
        correlation: cosine between the directions of a ``_L`` control and its ``_R`` twin, in [-1, 1].
        coactivation: amplitude of the habitual co-activations (0 = none; 0.3: a typical person adds
            up to about 0.3 of a secondary control at full expression strength).
        seed: seed of ``P``, ``A`` and ``A'``.

    Raises:
        DatasetLayoutError: ``strength < 0``, ``coactivation < 0``, ``rank`` outside ``1..K_id`` or
            ``correlation`` outside [-1, 1].
    """

    def __init__(self, model: torch.nn.Module, strength: float = 0.5, rank: int = 4,
                 correlation: float = 0.7, coactivation: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        if strength < 0:
            raise DatasetLayoutError(f"data.style_strength={strength}: expected >= 0")
        if coactivation < 0:
            raise DatasetLayoutError(f"data.style_coactivation={coactivation}: expected >= 0")
        if not 1 <= rank <= model.n_id:
            raise DatasetLayoutError(f"data.style_rank={rank}: expected 1..{model.n_id} (identity coefficients)")
        if not -1.0 <= correlation <= 1.0:
            raise DatasetLayoutError(f"data.style_correlation={correlation}: expected a cosine in [-1, 1]")
        self.model, self.strength, self.coactivation = model, float(strength), float(coactivation)
        rng = np.random.default_rng(seed)
        projection, _ = np.linalg.qr(rng.standard_normal((model.n_id, rank)))           # [K_id, rank]
        names = list(model.exp_names)
        directions = rng.standard_normal((rank, len(names)))                             # [rank, K_exp]
        co_directions = rng.standard_normal((rank, len(names)))                          # [rank, K_exp]
        co_directions /= np.linalg.norm(co_directions, axis=0, keepdims=True)
        co_mask = np.array([name in COACTIVATED for name in names], dtype=np.float32)
        for k, name in enumerate(names):                     # right twins lean on their left control
            if name.endswith("_R") and name[:-2] + "_L" in names:
                left = directions[:, names.index(name[:-2] + "_L")]
                left = left / np.linalg.norm(left)
                own = directions[:, k] - (directions[:, k] @ left) * left
                own = own / max(np.linalg.norm(own), 1e-12)
                directions[:, k] = correlation * left + np.sqrt(1.0 - correlation ** 2) * own
        directions /= np.linalg.norm(directions, axis=0, keepdims=True)
        self.register_buffer("projection", torch.as_tensor(projection, dtype=torch.float32))
        self.register_buffer("directions", torch.as_tensor(directions, dtype=torch.float32))
        self.register_buffer("co_directions", torch.as_tensor(co_directions * co_mask, dtype=torch.float32))

    @property
    def n_id(self) -> int:
        return self.model.n_id

    @property
    def mean_shape(self) -> torch.Tensor:
        return self.model.mean_shape

    def gains(self, id_coeffs: torch.Tensor) -> torch.Tensor:
        """``[B, K_id]`` identity coefficients -> ``[B, K_exp]`` control gains (1 = the rig's own motion)."""
        z = id_coeffs @ self.projection @ self.directions
        return torch.exp(self.strength * torch.tanh(z))

    def coactivations(self, id_coeffs: torch.Tensor) -> torch.Tensor:
        """``[B, K_id]`` -> ``[B, K_exp]`` habitual co-activations ``h(id) >= 0`` at full expression strength."""
        return self.coactivation * torch.relu(id_coeffs @ self.projection @ self.co_directions)

    def styled(self, id_coeffs: torch.Tensor, exp_coeffs: torch.Tensor) -> torch.Tensor:
        """Controls ``[B, K_exp]`` the identity actually performs: ``gains * c + h * max_k c_k``."""
        strength = exp_coeffs.max(dim=-1, keepdim=True).values.clamp(min=0.0)
        return self.gains(id_coeffs) * exp_coeffs + self.coactivations(id_coeffs) * strength

    def vertices(self, id_coeffs: torch.Tensor, exp_coeffs: torch.Tensor) -> torch.Tensor:
        """``[B, K_id]``, ``[B, K_exp]`` -> ``[B, V, 3]`` mm: the expression performed in the identity's style."""
        return self.model.vertices(id_coeffs, self.styled(id_coeffs, exp_coeffs))


def source_files(root=None, **_options) -> list[Path]:
    """The procedural face model's source file: editing it invalidates cached collections."""
    return [Path(inspect.getsourcefile(ProceduralFaceModel))]


def build(
    root=None,
    *,
    allocate: Allocator,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_by: str = "identity",
    n_identities: int = 64,
    samples_per_expression: int = 2,
    intensity_jitter: float = 0.2,
    coeff_noise: float = 0.03,
    id_scale: float = 1.0,
    model_seed: int = 0,
    style_strength: float = 0.0,
    style_rank: int = 4,
    style_correlation: float = 0.7,
    style_coactivation: float = 0.0,
):
    """Sample the procedural face into a :class:`~facegen.data.meshes.MeshCollection` (mm).

    Args:
        root: unused (must be ``None``: the procedural face has no files).
        allocate: ``(n, v) -> [n, v, 3] float32`` output array.
        seed: identity/expression sampling seed and split seed.
        val_fraction, test_fraction, split_by: the split (whole identities by default).
        n_identities, samples_per_expression, intensity_jitter, coeff_noise, id_scale: see
            :func:`facegen.data.mesh_sources.sample_morphable`.
        model_seed: seed of :class:`facegen.morphable.ProceduralFaceModel` (the face model itself)
            and of the identity -> style relation.
        style_strength, style_rank, style_correlation, style_coactivation: identity-specific expression style
            (:class:`IdentityStyle`); ``style_strength=0`` (the function default) turns it off and
            gives exactly the rig's motion for every identity.

    Returns:
        ``N = n_identities * n_expressions * samples_per_expression`` meshes; identity names
        ``id_000...``; template = the model's mean neutral face.

    Raises:
        DatasetLayoutError: ``root`` is given, or the model has no FaceScape expression presets.
    """
    if root is not None:
        raise DatasetLayoutError(f"data.root={root}: the procedural source reads no files; set data.root=null")
    model = ProceduralFaceModel(seed=model_seed)
    table = expression_table(model.expression_presets, model.n_exp)
    performer = IdentityStyle(model, style_strength, style_rank, style_correlation, style_coactivation,
                              seed=model_seed) if style_strength > 0 or style_coactivation > 0 else model
    vertices, identity, expression = sample_morphable(
        performer, table, n_identities, samples_per_expression, intensity_jitter, coeff_noise, id_scale, seed, allocate
    )
    split = assign_splits(split_groups(identity, expression, split_by), val_fraction, test_fraction, seed)
    return MeshCollection(
        vertices=vertices,
        identity=identity,
        expression=expression,
        identity_names=[f"id_{i:03d}" for i in range(n_identities)],
        expression_names=list(table),
        faces=model.faces.numpy().astype("int64"),
        template=model.mean_shape.numpy().astype("float32"),
        split=split,
    )
