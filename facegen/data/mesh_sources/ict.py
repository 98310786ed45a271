"""ICT-FaceKit meshes: random identities x FaceScape expressions built from ARKit blendshapes.

The ICT-FaceKit light model (Li et al. 2020, github.com/ICT-VGL/ICT-FaceKit) is loaded with
:func:`facegen.morphable.load_ict_facekit` (face area, vertices 0..9408, mm). Identities are random
combinations ``N(0, id_scale^2)`` of its identity PCA meshes; the 20 FaceScape expressions are the
blendshape combinations of :data:`FACESCAPE_TO_ARKIT` (weights chosen by us to mirror FaceScape's
capture prompts; FACS action units in the comments). Everything is seeded.

Layout: ``<root>/FaceXModel/{generic_neutral_mesh,identity000..,<blendshape>}.obj`` and
``vertex_indices.json``. Split: whole identities (unseen at test time).
"""
from __future__ import annotations

from pathlib import Path

import torch

from facegen.data.collection import MeshCollection
from facegen.data.mesh_sources import (
    Allocator,
    assign_splits,
    sample_morphable,
    split_groups,
)
from facegen.errors import DatasetLayoutError
from facegen.morphable.ict import load_ict_facekit

LAYOUT = "<root>/FaceXModel/generic_neutral_mesh.obj, identityNNN.obj, <ARKit blendshape>.obj, vertex_indices.json"


def _pair(name: str, weight: float = 1.0) -> dict[str, float]:
    return {f"{name}_L": weight, f"{name}_R": weight}


# FaceScape expression -> {ICT/ARKit blendshape: weight}. Order = FaceScape order.
FACESCAPE_TO_ARKIT: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {**_pair("mouthSmile"), **_pair("cheekSquint", 0.5)},                     # AU12 + AU6
    "mouth_stretch": {"jawOpen": 1.0, **_pair("mouthStretch", 0.5)},                   # AU26/27 + AU20
    "anger": {**_pair("browDown"), **_pair("noseSneer", 0.6), **_pair("mouthPress", 0.6),
              **_pair("eyeSquint", 0.4)},                                               # AU4 + AU9 + AU24 + AU7
    "jaw_left": {"jawLeft": 1.0},                                                       # AD30 left
    "jaw_right": {"jawRight": 1.0},                                                     # AD30 right
    "jaw_forward": {"jawForward": 1.0},                                                 # AD29
    "mouth_left": {"mouthLeft": 1.0},
    "mouth_right": {"mouthRight": 1.0},
    "dimpler": {**_pair("mouthDimple")},                                                # AU14
    "chin_raiser": {"mouthShrugLower": 1.0, "mouthShrugUpper": 0.3},                   # AU17
    "lip_puckerer": {"mouthPucker": 1.0},                                               # AU18
    "lip_funneler": {"mouthFunnel": 1.0, "jawOpen": 0.2},                              # AU22 + AU25
    "sadness": {**_pair("mouthFrown"), **_pair("browInnerUp", 0.8), "mouthShrugLower": 0.3},  # AU15 + AU1 + AU17
    "lip_roll": {"mouthRollLower": 1.0, "mouthRollUpper": 1.0},                        # AU28
    "grin": {**_pair("mouthSmile"), **_pair("mouthUpperUp", 0.6), **_pair("mouthLowerDown", 0.5),
             **_pair("mouthStretch", 0.3)},                                             # AU12 + AU10 + AU16 + AU20
    "cheek_blowing": {**_pair("cheekPuff")},                                            # AD34
    "eye_closed": {**_pair("eyeBlink")},                                                # AU43
    "brow_raiser": {**_pair("browInnerUp"), **_pair("browOuterUp")},                   # AU1 + AU2
    "brow_lower": {**_pair("browDown")},                                                # AU4
}


def expression_table(exp_names: list[str], root=None) -> dict[str, torch.Tensor]:
    """:data:`FACESCAPE_TO_ARKIT` as ``[K_exp]`` coefficient vectors over ``exp_names``.

    Raises:
        DatasetLayoutError: a blendshape of the table is not among ``exp_names`` (names ``root``).
    """
    table = {}
    for expression, weights in FACESCAPE_TO_ARKIT.items():
        coeffs = torch.zeros(len(exp_names))
        for blendshape, weight in weights.items():
            if blendshape not in exp_names:
                raise DatasetLayoutError(
                    f"{root}: ICT blendshape {blendshape!r} (for {expression!r}) not in the model's "
                    f"expressions; expected layout {LAYOUT}"
                )
            coeffs[exp_names.index(blendshape)] = weight
        table[expression] = coeffs
    return table


def _model_folder(root) -> Path:
    """``<root>/FaceXModel`` (or ``root`` itself when it is that folder)."""
    for folder in ([] if root is None else [Path(root) / "FaceXModel", Path(root)]):
        if (folder / "generic_neutral_mesh.obj").is_file():
            return folder
    raise DatasetLayoutError(f"ICT-FaceKit root {root}: no FaceXModel/generic_neutral_mesh.obj; expected layout {LAYOUT}")


def source_files(root, **_options) -> list[Path]:
    """The OBJ and JSON files of the ``FaceXModel`` folder."""
    folder = _model_folder(root)
    return sorted(p for p in folder.iterdir() if p.suffix in (".obj", ".json"))


def build(
    root,
    *,
    allocate: Allocator,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_by: str = "identity",
    n_identities: int = 50,
    samples_per_expression: int = 1,
    intensity_jitter: float = 0.2,
    coeff_noise: float = 0.03,
    id_scale: float = 1.0,
):
    """Sample the ICT-FaceKit model into a :class:`~facegen.data.meshes.MeshCollection` (mm).

    Args:
        root: ICT-FaceKit checkout (layout :data:`LAYOUT`) or its ``FaceXModel`` folder.
        allocate: ``(n, v) -> [n, v, 3] float32`` output array.
        seed: sampling and split seed.
        val_fraction, test_fraction, split_by: the split (whole identities by default).
        n_identities, samples_per_expression, intensity_jitter, coeff_noise, id_scale: see
            :func:`facegen.data.mesh_sources.sample_morphable`.

    Returns:
        ``n_identities * 20 * samples_per_expression`` face-area meshes, labels in FaceScape
        order; template = the generic neutral face (mm).

    Raises:
        DatasetLayoutError: missing root/FaceXModel, or a blendshape of the table is missing.
        MeshFormatError: an unreadable or inconsistent ICT OBJ (from the loader).
    """
    _model_folder(root)
    model = load_ict_facekit(root, face_area=True)
    table = expression_table(list(model.exp_names), root)
    vertices, identity, expression = sample_morphable(
        model, table, n_identities, samples_per_expression, intensity_jitter, coeff_noise, id_scale, seed, allocate
    )
    split = assign_splits(split_groups(identity, expression, split_by), val_fraction, test_fraction, seed)
    return MeshCollection(
        vertices=vertices,
        identity=identity,
        expression=expression,
        identity_names=[f"ict_id_{i:03d}" for i in range(n_identities)],
        expression_names=list(table),
        faces=model.faces.numpy().astype("int64"),
        template=model.mean_shape.numpy().astype("float32"),
        split=split,
    )
