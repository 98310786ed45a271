"""facegen's embedded default face: a procedural morphable model with an identity-aware expression rig.

No files are needed: the template, regions, landmarks, identity and albedo bases come from
:mod:`facegen.morphable.procedural_template` (deterministic from ``seed``). Expressions are a small
rig of named controls (values in [0, 1]) whose geometry is computed from each identity's own
neutral face ``N = mean_shape + id_coeffs @ id_basis``:

- the jaw rotates about a pivot between that identity's ear-level anchor vertices (linear blend
  skinning with fixed weights: lower lip and chin 1, upper lip 0, a wide fade over the cheeks);
  ``jaw_forward`` slides by 9 % of that identity's pivot-to-chin distance;
- mouth controls live in a frame at that identity's lip corners: offsets and fall-offs scale with
  its mouth width (``q = (N - mouth_centre) / mouth_width``);
- eyelids close onto that identity's lower lid (the upper lid moves by the identity's lid gap);
- brows move along that identity's brow-to-eye vector; cheeks puff along its normals.

Hence ``vertices(id, exp)`` is not linear: adding one identity's expression offsets to another
identity's neutral gives a measurably different (wrong) face. ``exp_basis`` holds the offsets of
each control at full activation for the mean identity, ``vertices(0, e_k) - mean_shape``, so
linear-model code paths work; ``vertices()`` is the exact model.
"""
from __future__ import annotations

import numpy as np
import torch

from facegen.morphable.base import MorphableModel
from facegen.morphable.params import euler_to_matrix
from facegen.morphable.procedural_template import (
    ALBEDO_NAMES,
    FaceShape,
    Template,
    albedo_model,
    brow_curve,
    build_template,
    identity_basis,
    smoothstep,
)

EXPRESSION_NAMES = (
    "jaw_open", "jaw_left", "jaw_right", "jaw_forward", "mouth_left", "mouth_right",
    "smile_L", "smile_R", "frown_L", "frown_R", "mouth_stretch_L", "mouth_stretch_R", "dimple_L", "dimple_R",
    "lip_pucker", "lip_funnel", "lip_roll", "upper_lip_raise", "lower_lip_depress", "chin_raise", "lip_press",
    "cheek_puff", "nose_wrinkle", "blink_L", "blink_R", "brow_inner_up", "brow_outer_up", "brow_lower",
)
"""Rig controls in coefficient order; ``_L``/``_R`` are the subject's left (x > 0) and right."""

FACESCAPE_EXPRESSIONS = [
    "neutral", "smile", "mouth_stretch", "anger", "jaw_left", "jaw_right", "jaw_forward", "mouth_left",
    "mouth_right", "dimpler", "chin_raiser", "lip_puckerer", "lip_funneler", "sadness", "lip_roll", "grin",
    "cheek_blowing", "eye_closed", "brow_raiser", "brow_lower",
]
"""The 20 FaceScape expressions in FaceScape's order (Yang et al., CVPR 2020; files ``1_neutral`` ... ``20_brow_lower``)."""

_PRESETS = {
    "neutral": {},
    "smile": {"smile_L": 0.8, "smile_R": 0.8, "jaw_open": 0.08},
    "mouth_stretch": {"jaw_open": 1.0, "mouth_stretch_L": 0.3, "mouth_stretch_R": 0.3, "lower_lip_depress": 0.3},
    "anger": {"brow_lower": 1.0, "lip_press": 0.6, "frown_L": 0.3, "frown_R": 0.3, "nose_wrinkle": 0.3},
    "jaw_left": {"jaw_left": 1.0, "jaw_open": 0.1},
    "jaw_right": {"jaw_right": 1.0, "jaw_open": 0.1},
    "jaw_forward": {"jaw_forward": 1.0, "jaw_open": 0.05},
    "mouth_left": {"mouth_left": 1.0},
    "mouth_right": {"mouth_right": 1.0},
    "dimpler": {"dimple_L": 1.0, "dimple_R": 1.0},
    "chin_raiser": {"chin_raise": 1.0, "lip_press": 0.2},
    "lip_puckerer": {"lip_pucker": 1.0},
    "lip_funneler": {"lip_funnel": 1.0, "jaw_open": 0.2},
    "sadness": {"frown_L": 0.8, "frown_R": 0.8, "brow_inner_up": 0.9, "lower_lip_depress": 0.2},
    "lip_roll": {"lip_roll": 1.0},
    "grin": {"smile_L": 1.0, "smile_R": 1.0, "upper_lip_raise": 0.7, "mouth_stretch_L": 0.3,
             "mouth_stretch_R": 0.3, "jaw_open": 0.15},
    "cheek_blowing": {"cheek_puff": 1.0, "lip_press": 0.3},
    "eye_closed": {"blink_L": 1.0, "blink_R": 1.0},
    "brow_raiser": {"brow_inner_up": 1.0, "brow_outer_up": 1.0},
    "brow_lower": {"brow_lower": 1.0},
}

JAW_OPEN_RAD = 0.30      # jaw rotation at jaw_open = 1 (17 degrees)
JAW_SIDE_RAD = 0.16      # jaw yaw at jaw_left / jaw_right = 1
JAW_FORWARD = 0.09       # forward slide at jaw_forward = 1, fraction of the pivot-to-chin distance


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals: [B, V, 3], faces [F, 3] -> [B, V, 3] (differentiable)."""
    corners = vertices[:, faces]                                        # [B, F, 3, 3]
    face_normals = torch.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)
    normals = torch.zeros_like(vertices)
    for k in range(3):
        normals = normals.index_add(1, faces[:, k], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)


class ProceduralFaceModel(MorphableModel):
    """The embedded default face model (no files): about 4,800 vertices, 9,400 triangles, mm.

    Args:
        seed: seeds the random smooth identity fields (``np.random.default_rng(seed)``).
        n_random_id: number of random identity fields after the 15 anatomical ones (K_id = 15 + n_random_id).
        shape: anatomical constants of the template (:class:`FaceShape`).

    Attributes (besides :class:`MorphableModel`'s):
        id_names: names of the identity coefficients (``face_width``, ..., ``random_4``).
        alb_names: names of the albedo coefficients (``skin_tone``, ``lip_red``, ...).
        expression_presets: FaceScape expression name -> [K_exp] control values, for all
            :data:`FACESCAPE_EXPRESSIONS`.

    Identity and albedo coefficients are in standard deviations (N(0, 1) gives plausible faces);
    expression controls are activations in [0, 1]. Regions: face, eye_left, eye_right, eyes, brows,
    nose, mouth, lips, jaw, cheeks (``_left`` = subject's left, x > 0).
    """

    def __init__(self, seed: int = 0, n_random_id: int = 5, shape: FaceShape | None = None):
        template = build_template(shape or FaceShape())
        id_basis, id_names = identity_basis(template, n_random_id, seed)
        albedo_mean, albedo_basis = albedo_model(template)
        super().__init__(
            template.vertices, template.faces, id_basis, np.zeros((len(EXPRESSION_NAMES),) + template.vertices.shape),
            EXPRESSION_NAMES, albedo_mean, albedo_basis, template.landmark_indices, template.regions,
            name=f"procedural(seed={seed})")
        self.seed = seed
        self.id_names = id_names
        self.alb_names = list(ALBEDO_NAMES)
        self._register_rig(template)
        with torch.no_grad():
            mean = self.mean_shape[None]
            controls = torch.eye(self.n_exp)
            self.exp_basis.copy_(self._pose(mean.expand(self.n_exp, -1, -1), controls) - mean)
        self.expression_presets = {name: self._preset(_PRESETS[name]) for name in FACESCAPE_EXPRESSIONS}

    def _preset(self, values: dict[str, float]) -> torch.Tensor:
        coeffs = torch.zeros(self.n_exp)
        for control, value in values.items():
            coeffs[self.exp_names.index(control)] = value
        return coeffs

    def _register_rig(self, t: Template) -> None:
        """Fixed per-vertex rig data from the template (weights, anchor vertices)."""
        s = t.shape
        X, Y = t.frontal_xy.T
        lm = t.landmark_indices
        f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        i64 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64))  # noqa: E731
        # Jaw skinning: the transition band widens from the mouth line (corners move halfway) over the cheeks.
        band = 1.0 + 28.0 * smoothstep(s.mouth_half_width - 4.0, s.mouth_half_width + 18.0, np.abs(X))
        jaw = smoothstep(s.mouth_y + 0.6 * band, s.mouth_y - 0.4 * band, Y)
        jaw[t.slit_upper], jaw[t.slit_lower] = 0.0, 1.0
        self.register_buffer("rig_jaw_weight", f32(jaw))
        grid = np.arange(s.n_columns * s.n_rows)        # ear-level anchors at azimuth +-85 degrees, y = 0
        pivots = [grid[np.argmin(np.abs(t.theta[grid] - side * np.deg2rad(85.0)) + np.abs(Y[grid]) / 10.0)]
                  for side in (-1, 1)]
        self.register_buffer("rig_pivot_anchors", i64(pivots))
        self.register_buffer("rig_chin", i64([lm[8]]))
        self.register_buffer("rig_mouth_corners", i64(t.mouth_corners))
        self.register_buffer("rig_lip_side", f32(t.lip_side))
        # Eyelids: closure fraction per eye; vertices outside an eye point at themselves (zero gap).
        own = np.arange(len(X))
        self.register_buffer("rig_lid_upper", i64(np.where(t.lid_upper >= 0, t.lid_upper, own)))
        self.register_buffer("rig_lid_lower", i64(np.where(t.lid_lower >= 0, t.lid_lower, own)))
        self.register_buffer("rig_blink_weight", f32(t.blink_weight))
        # Brows: anchors (brow middle, upper-lid middle) per side and fixed weights over brows and forehead.
        self.register_buffer("rig_brow_anchor", i64([lm[19], lm[24]]))
        self.register_buffer("rig_lid_anchor", i64([lm[37], lm[44]]))
        brow_y, _ = brow_curve(s, X)
        offset = np.abs(X) - s.eye_x
        brow = np.exp(-0.5 * ((Y - brow_y - 2.0) / 7.0) ** 2) * smoothstep(-30.0, -14.0, offset) \
            * smoothstep(30.0, 18.0, offset)
        self.register_buffer("rig_brow_weight", f32(brow))
        self.register_buffer("rig_brow_inner", f32(brow * smoothstep(12.0, -12.0, offset)))
        self.register_buffer("rig_brow_outer", f32(brow * smoothstep(-6.0, 14.0, offset)))
        self.register_buffer("rig_side", f32(np.sign(X)))

    # ------------------------------------------------------------------ the exact model
    def vertices(self, id_coeffs: torch.Tensor | None = None, exp_coeffs: torch.Tensor | None = None) -> torch.Tensor:
        """Faces for identity [B, K_id] and expression controls [B, K_exp] -> [B, V, 3] mm.

        Non-linear in the expression controls and in their interaction with identity (see module
        docstring); differentiable w.r.t. both. None means zeros (B = 1 if both are None).
        Raises ModelLayoutError for a wrong coefficient shape.
        """
        batch = self._batch(id_coeffs, exp_coeffs)
        neutral = self.identity_shape(self._coeffs(id_coeffs, self.n_id, batch, "id_coeffs"))
        return self._pose(neutral, self._coeffs(exp_coeffs, self.n_exp, batch, "exp_coeffs"))

    def _pose(self, neutral: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """Apply the rig to neutral faces [B, V, 3] with controls [B, K_exp]."""
        fields = self._local_fields(neutral)
        c = {name: controls[:, k].view(-1, 1, 1) for k, name in enumerate(self.exp_names)}
        posed = neutral
        for name, offset in fields.items():
            posed = posed + c[name] * offset
        return self._jaw(neutral, posed, c)

    def _jaw(self, neutral: torch.Tensor, posed: torch.Tensor, c: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rotate/slide the jaw about the identity's pivot with linear blend skinning."""
        pivot = neutral[:, self.rig_pivot_anchors].mean(dim=1, keepdim=True)        # [B, 1, 3]
        lever = (neutral[:, self.rig_chin] - pivot).norm(dim=-1, keepdim=True)       # [B, 1, 1]
        pitch = JAW_OPEN_RAD * c["jaw_open"].view(-1)
        yaw = JAW_SIDE_RAD * (c["jaw_left"] - c["jaw_right"]).view(-1)
        rotation = euler_to_matrix(torch.stack([pitch, yaw, torch.zeros_like(yaw)], -1))  # R_y R_x [B, 3, 3]
        slide = torch.zeros_like(pivot)
        slide = slide + torch.tensor([0.0, 0.0, 1.0], dtype=posed.dtype, device=posed.device) \
            * JAW_FORWARD * lever * c["jaw_forward"]
        moved = pivot + (posed - pivot) @ rotation.transpose(1, 2) + slide
        return posed + self.rig_jaw_weight[None, :, None] * (moved - posed)

    def _local_fields(self, neutral: torch.Tensor) -> dict[str, torch.Tensor]:
        """Offsets [B, V, 3] at full activation of every non-jaw control, computed from the neutral faces."""
        B = neutral.shape[0]
        right, left = neutral[:, self.rig_mouth_corners[0]], neutral[:, self.rig_mouth_corners[1]]
        width = (left - right).norm(dim=-1).view(B, 1, 1)                            # mouth width, mm
        rel = neutral - 0.5 * (left + right)[:, None]                                # from the mouth centre
        q = rel / width
        qx, qy = q[..., 0], q[..., 1]
        lip_side = self.rig_lip_side[None]
        upper, lower = (lip_side > 0).to(neutral.dtype), (lip_side < 0).to(neutral.dtype)
        normals = vertex_normals(neutral, self.faces)

        def vec(x, y, z):
            parts = [torch.as_tensor(v, dtype=neutral.dtype, device=neutral.device).expand_as(qx) for v in (x, y, z)]
            return torch.stack(parts, dim=-1) * width

        def blob(cx, cy, sigma):
            return torch.exp(-((qx - cx) ** 2 + (qy - cy) ** 2) / (2.0 * sigma ** 2))[..., None]

        lips = torch.exp(-(qx / 0.55) ** 4 - (qy / 0.16) ** 2)[..., None]
        fields = {}
        for suffix, side in (("L", 1.0), ("R", -1.0)):
            corner = blob(0.5 * side, 0.0, 0.28)
            fields[f"smile_{suffix}"] = corner * vec(0.09 * side, 0.12, -0.05) \
                + blob(0.75 * side, 0.55, 0.25) * vec(0.0, 0.05, 0.02)
            fields[f"frown_{suffix}"] = corner * vec(0.02 * side, -0.09, -0.01)
            fields[f"mouth_stretch_{suffix}"] = corner * vec(0.11 * side, -0.03, -0.04)
            fields[f"dimple_{suffix}"] = blob(0.5 * side, 0.0, 0.2) * vec(0.02 * side, 0.0, -0.07)
        mouth = blob(0.0, 0.0, 0.45)
        fields["mouth_left"] = mouth * vec(0.15, 0.0, 0.0)
        fields["mouth_right"] = mouth * vec(-0.15, 0.0, 0.0)
        zero = torch.zeros_like(qx)
        fields["lip_pucker"] = lips * torch.stack([-0.35 * rel[..., 0], -0.1 * rel[..., 1], zero], -1) \
            + lips * vec(0.0, 0.0, 0.14)
        opening = (1.0 - (2.0 * qx) ** 2).clamp(min=0.0)
        fields["lip_funnel"] = lips * torch.stack([-0.2 * rel[..., 0], zero, zero], -1) \
            + lips * vec(0.0, 0.08 * lip_side * opening, 0.10)
        fields["lip_roll"] = lips * (-0.05 * width * normals) + lips * vec(0.0, -0.03 * lip_side, 0.0)
        upper_lip = (upper * torch.exp(-(qx / 0.45) ** 4 - ((qy - 0.08) / 0.15) ** 2))[..., None]
        fields["upper_lip_raise"] = upper_lip * vec(0.0, 0.07, 0.02)
        fields["lower_lip_depress"] = (lower * torch.exp(-(qx / 0.45) ** 4 - ((qy + 0.1) / 0.15) ** 2))[..., None] \
            * vec(0.0, -0.07, 0.01)
        fields["chin_raise"] = (lower * torch.exp(-(qx / 0.35) ** 2 - ((qy + 0.45) / 0.3) ** 2))[..., None] \
            * vec(0.0, 0.05, 0.04)
        fields["lip_press"] = lips * vec(0.0, -0.025 * lip_side, -0.015)
        fields["cheek_puff"] = (blob(0.85, -0.05, 0.3) + blob(-0.85, -0.05, 0.3)) * 0.14 * width * normals
        fields["nose_wrinkle"] = (blob(0.28, 0.45, 0.12) + blob(-0.28, 0.45, 0.12)) * vec(0.0, 0.05, 0.02) \
            + 0.3 * fields["upper_lip_raise"]
        # Eyelids: the upper lid moves by this identity's lid gap onto its lower lid.
        gap = neutral[:, self.rig_lid_upper] - neutral[:, self.rig_lid_lower]       # [B, V, 3]
        fields["blink_R"] = -self.rig_blink_weight[0, None, :, None] * gap
        fields["blink_L"] = -self.rig_blink_weight[1, None, :, None] * gap
        # Brows: along this identity's brow-to-lid vector, scaled by its length.
        to_lid = neutral[:, self.rig_lid_anchor] - neutral[:, self.rig_brow_anchor]  # [B, 2, 3] (right, left)
        per_vertex = torch.where((self.rig_side > 0)[None, :, None], to_lid[:, 1:2], to_lid[:, 0:1])
        scale = per_vertex.norm(dim=-1, keepdim=True) / 13.0
        up = torch.tensor([0.0, 1.0, 0.1], dtype=neutral.dtype, device=neutral.device)
        inward = -self.rig_side[None, :, None] * torch.tensor([1.0, 0.0, 0.0], dtype=neutral.dtype,
                                                              device=neutral.device)
        fields["brow_inner_up"] = self.rig_brow_inner[None, :, None] * 5.0 * scale * up
        fields["brow_outer_up"] = self.rig_brow_outer[None, :, None] * 4.5 * scale * up
        fields["brow_lower"] = self.rig_brow_weight[None, :, None] * (0.3 * per_vertex + 1.5 * scale * inward)
        return fields
