"""Copy-the-source baselines of expression transfer (FaceTuneGAN eq. 14) on a mesh data config's test split.

For the same seeded triplets ``(c, c', s)`` as ``FaceTuneGAN.evaluate_run`` (``draw_triplets``, seed 0), prints
the mean AVD (mm) against the ground truth ``x_{c,s}`` of
- offset adding: ``x_{c,neutral} + (x_{c',s} - x_{c',neutral})``;
- deformation transfer (Sumner & Popovic 2004) of ``x_{c',neutral} -> x_{c',s}`` onto ``x_{c,neutral}``
  (the Tables 3-4 baseline column);
- no transfer: ``x_{c,neutral}`` itself (the expression's own size).

    python experiments/facetunegan/baselines.py [n_triplets] [data overrides, e.g. data.style_strength=0]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import facegen
import facegen.config  # noqa: F401  (resolvers)
from facegen.geometry import deformation_transfer
from facegen.metrics.mesh import avd, draw_triplets
from facegen.models.facetunegan.evaluation import triplet_meshes


def main(n_triplets: int = 500, overrides: list[str] | None = None) -> dict[str, float]:
    with initialize_config_dir(config_dir=str(Path(facegen.__file__).parent / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides or []))
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    test = datamodule.collection_for("test")
    triplets = sorted(draw_triplets(test.identity, test.expression, n_triplets, seed=0))
    m = triplet_meshes(test, triplets, 0)
    faces = np.asarray(test.faces)
    offset = m["content_neutral"] + m["source_styled"] - m["source_neutral"]
    dt = np.stack([deformation_transfer(m["source_neutral"][i], m["source_styled"][i], m["content_neutral"][i], faces)
                   for i in range(len(triplets))])
    errors = {"offset_adding_mm": float(avd(offset, m["content_styled"]).mean()),
              "deformation_transfer_mm": float(avd(dt, m["content_styled"]).mean()),
              "no_transfer_mm": float(avd(m["content_neutral"], m["content_styled"]).mean()),
              "n_triplets": len(triplets)}
    print(errors)
    return errors


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 500
    main(n, args)
