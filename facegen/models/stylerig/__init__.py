"""StyleRig (Tewari et al., CVPR 2020): DFR (latent -> face parameters) and RigNet (3D-controlled latent edits).

Modules: :mod:`.dfr` (``F``), :mod:`.rignet` (RigNet, RigNets), :mod:`.losses`, :mod:`.frozen` (what both
LightningModules share: frozen generator, morphable model, renderer, landmark model, checkpoints),
:mod:`.dfr_module` (``DFR``, ``model=dfr``), :mod:`.stylerig_module` (``StyleRig``, ``model=stylerig``),
:mod:`.evaluation`, :mod:`.latents` (the datamodule of generator latents).
"""
from facegen.models.stylerig.dfr import DFRNetwork
from facegen.models.stylerig.dfr_module import DFR, DFREvaluation, DFRLoss
from facegen.models.stylerig.frozen import MorphableSpec
from facegen.models.stylerig.rignet import (
    CONTROL_PARTS,
    DEFAULT_CONTROL_LAYERS,
    RigNet,
    RigNets,
    parse_layers,
)
from facegen.models.stylerig.stylerig_module import (
    StyleRig,
    StyleRigEvaluation,
    StyleRigLoss,
)

__all__ = ["CONTROL_PARTS", "DEFAULT_CONTROL_LAYERS", "DFR", "DFREvaluation", "DFRLoss", "DFRNetwork",
           "MorphableSpec", "RigNet", "RigNets", "StyleRig", "StyleRigEvaluation", "StyleRigLoss", "parse_layers"]
