"""Outputs of the legacy checkpoints under the code that wrote them (d915e12): the regrouped code must match."""
import json
import sys

import torch

torch.set_num_threads(1)
from facegen.models.face_regressor import load_face_regressor
from facegen.models.facetunegan import FaceTuneGAN
from facegen.models.stylegan2.module import StyleGAN2
from facegen.models.stylerig import DFR, StyleRig

L = sys.argv[1]  # the OUT folder of make_legacy.sh
out = {}
g = torch.Generator().manual_seed(0)
m = StyleGAN2.from_checkpoint(f"{L}/stylegan2/checkpoints/last.ckpt")
z = torch.randn(2, m.G_ema.z_dim, generator=g)
with torch.no_grad():
    out["stylegan2"] = float(m.G_ema.eval()(z, None, noise_mode="const").double().sum())
m = FaceTuneGAN.from_checkpoint(f"{L}/facetunegan/checkpoints/last.ckpt")
with torch.no_grad():
    out["facetunegan"] = float(m.eval().reconstruct(m.template_vertices[None] + 0.5).double().sum())
m = DFR.from_checkpoint(f"{L}/dfr/checkpoints/last.ckpt")
w = torch.randn(2, m.G.num_ws, m.G.w_dim, generator=g)
with torch.no_grad():
    out["dfr"] = float(m.eval()(w).double().sum())
m = StyleRig.from_checkpoint(f"{L}/stylerig/checkpoints/last.ckpt")
with torch.no_grad():
    p = m.dfr(w)
    out["stylerig"] = float(m.eval().edit(w, p.flip(0), "pose").double().sum())
r = load_face_regressor(f"{L}/face_regressor/regressor.pt")
img = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
with torch.no_grad():
    out["face_regressor"] = float(r.eval().predict(img)["params"].double().sum())
print(json.dumps(out, indent=1))
