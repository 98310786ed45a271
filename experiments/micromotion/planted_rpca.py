"""Planted-motion check of the direction decoders (no generator needed).

Anchors of one layer: ``w + s_i * D + noise`` (N anchors x 512 dims, s = 0..1, inversion noise std
0.02), optionally with gross outliers (a fraction of entries +-2). Prints, per decoder, the mean
over seeds of the cosine between the decoded dV and the true D, and the length ratio |dV| / |D|.

    .venv/bin/python experiments/micromotion/planted_rpca.py [--seeds 10] [--anchors 8] [--outliers 0.03]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from facegen.editing.subspace import decode_direction

torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--anchors", type=int, default=8)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--outliers", type=float, nargs="+", default=[0.0, 0.03])
    args = parser.parse_args()
    decoders = {"rpca (median-centred, default)": dict(method="rpca", centre="median"),
                "rpca (uncentred)": dict(method="rpca", centre="none"),
                "pca": dict(method="pca"), "two_anchor": dict(method="two_anchor")}
    print("| outlier fraction | decoder | cos(dV, D) | abs(dV) / abs(D) |\n|---|---|---|---|")
    for fraction in args.outliers:
        stats = {name: [] for name in decoders}
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            w, D = rng.standard_normal(args.dims), 0.3 * rng.standard_normal(args.dims)
            s = np.linspace(0, 1, args.anchors)
            A = w + s[:, None] * D + 0.02 * rng.standard_normal((args.anchors, args.dims))
            mask = rng.random(A.shape) < fraction
            A[mask] += 2.0 * rng.choice([-1.0, 1.0], mask.sum())
            for name, kwargs in decoders.items():
                dv = decode_direction(A[:, None], rank=4, **kwargs).dv[0]
                stats[name].append((dv @ D / np.linalg.norm(dv) / np.linalg.norm(D), np.linalg.norm(dv) / np.linalg.norm(D)))
        for name, values in stats.items():
            cos, ratio = np.mean(values, axis=0)
            print(f"| {fraction:g} | {name} | {cos:.3f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
