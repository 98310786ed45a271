"""Measure motion-transfer augmentation and latent selection on Yale faces at 64x64 (CPU).

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python experiments/macaque/measure_augment.py <generator.ckpt> <out>

1. augment_dataset on ../shared/data/yalefaces (164 stills, 8 frames each, faceworld driving, Yale template box);
2. a pool = the originals + 2 frames per still (the first two of each still's frames), inverted into W with
   invert_pool under the given first-round generator;
3. k = 164 selected by each method; coverage of the pool, of a random k and of each selection (same PCA basis);
   coverage plots. Writes <out>/measure.json.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facegen.augment import YALE_TEMPLATE_BOX, augment_dataset
from facegen.augment.selection import (
    fit_coverage_basis,
    invert_pool,
    latent_coverage,
    plot_coverage,
    select_subset,
)
from facegen.data.images import ImageDataModule
from facegen.errors import CheckpointError
from facegen.models.stylegan2.formats import generator_from_state_dict, load_generator

torch.set_num_threads(1)
ckpt, out = Path(sys.argv[1]), Path(sys.argv[2])
yale = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "yalefaces"
report = {}
result = augment_dataset(yale, out / "augmented", resolution=64, channels=1, frames_per_still=8,
                         template_box=YALE_TEMPLATE_BOX, seed=0)
report["augment"] = {"stills": result.n_stills, "images": result.n_images, "seconds": result.seconds,
                     "seconds_per_still": result.seconds_per_still,
                     "seconds_per_output_image": result.seconds / result.n_images}
print(report["augment"], flush=True)

dm = ImageDataModule(result.zip_path, resolution=64, channels=1)
dm.setup()
names = [r.name for r in dm.train_set.records]
pool_ids = [i for i, n in enumerate(names) if "_mt" not in n or n.endswith(("_mt00.png", "_mt01.png"))]
images = torch.stack([dm.train_set[i]["image"] for i in pool_ids])
is_original = np.array(["_mt" not in names[i] for i in pool_ids])
try:
    G, _ = load_generator(ckpt)
except CheckpointError as error:  # facegen .ckpt whose hparams hold OmegaConf containers (see augment.md)
    print(f"load_generator refused ({error}); reading our own file's G_ema weights directly", flush=True)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    G = generator_from_state_dict({k[len("G_ema."):]: v for k, v in state.items() if k.startswith("G_ema.")})
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 30
t = time.perf_counter()
w = invert_pool(G, images, batch_size=64, num_steps=steps, w_avg_samples=2000, seed=0,
                progress=lambda d, n: print(f"inverted {d}/{n} ({time.perf_counter() - t:.0f} s)", flush=True))
report["invert"] = {"pool": len(pool_ids), "num_steps": steps, "seconds": time.perf_counter() - t,
                    "generator": str(ckpt), "w_dim": int(w.shape[1])}
np.savez(out / "pool_latents.npz", w=w, names=np.array([names[i] for i in pool_ids]))
basis = fit_coverage_basis(w)
k = 164
rows = {"pool": latent_coverage(w, basis)}
rows["originals_only"] = latent_coverage(w[is_original], basis)
rows["random_k"] = latent_coverage(w[np.random.default_rng(0).choice(len(w), k, replace=False)], basis)
for method in ("kmeans", "fps", "inverse_density"):
    t = time.perf_counter()
    idx = select_subset(w, k, method, seed=0)
    rows[method] = latent_coverage(w[idx], basis) | {"seconds": time.perf_counter() - t,
                                                     "originals_in_subset": int(is_original[idx].sum())}
    plot_coverage(w, idx, out / f"coverage_{method}.png", basis=basis, title=f"{method}, k={k}")
report["coverage"] = rows
(out / "measure.json").write_text(json.dumps(report, indent=1, default=float))
for name, row in rows.items():
    print(f"{name:16s} n={row['n']:4d} occupancy={row['occupancy']:.3f} evenness={row['entropy_normalised']:.3f} "
          f"max_cell={row['max_cell_fraction']:.3f}")
