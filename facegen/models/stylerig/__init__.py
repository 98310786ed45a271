"""StyleRig (Tewari et al., CVPR 2020): DFR (latent -> face parameters) and RigNet (3D-controlled latent edits)."""
from facegen.models.stylerig.dfr import DFRNetwork
from facegen.models.stylerig.module import DFR, StyleRig
from facegen.models.stylerig.rignet import (
    CONTROL_PARTS,
    DEFAULT_CONTROL_LAYERS,
    RigNet,
    parse_layers,
)

__all__ = ["CONTROL_PARTS", "DEFAULT_CONTROL_LAYERS", "DFR", "DFRNetwork", "RigNet", "StyleRig", "parse_layers"]
