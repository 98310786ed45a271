"""Summarise face-world micromotion evaluations of several source clips (one source identity each).

    python experiments/micromotion/summarise_clips.py runs/micromotion/face_world_eval_<tag>_smile_w_plus*

Reads each folder's ``results.json`` (written by ``python -m facegen.editing.subspace.evaluate``) and prints a
Markdown table: one row per source clip with the regressor's rise of the target expression on the clip and on its reconstructions
(W+ or W, as evaluated: is the motion in the anchors at all?) and the transfer rho of each method at alpha 1, then the mean over clips
(mean +- standard error over clips) per method and alpha.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(folders: list[str]) -> None:
    runs = []
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise SystemExit(f"summarise_clips.py: {path} does not exist (run facegen.editing.subspace.evaluate)")
        runs.append(json.loads(path.read_text()))
    keys = ("generator_sha1", "expression", "latent_space", "seeds", "alphas")
    for folder, run in zip(folders[1:], runs[1:]):                    # one table = one generator and protocol
        differ = [k for k in keys if run["settings"][k] != runs[0]["settings"][k]]
        if differ:
            raise SystemExit(f"summarise_clips.py: {folder} differs from {folders[0]} in {differ}; "
                             "summarise runs of one generator and protocol")
    runs.sort(key=lambda r: r["settings"]["clip_seed"])
    methods = list(dict.fromkeys(row["method"] for row in runs[0]["rows"]))
    alphas = sorted({row["alpha"] for row in runs[0]["rows"]})
    print("| clip seed | regressor rise on clip | on reconstructions | rho on reconstructions | "
          + " | ".join(f"rho {m} (alpha {alphas[0]:g})" for m in methods) + " |")
    print("|" + "---|" * (4 + len(methods)))
    for run in runs:
        a = run["anchors"]
        clip, recon = a["regressor_on_clip"], a["regressor_on_anchor_reconstructions"]
        rho = {r["method"]: r["rho"] for r in run["rows"] if r["alpha"] == alphas[0]}
        print(f"| {run['settings']['clip_seed']} | {clip[-1] - clip[0]:.3f} | {recon[-1] - recon[0]:.3f} | "
              f"{a['rho_reconstructions']:.3f} | " + " | ".join(f"{rho[m]:.3f}" for m in methods) + " |")
    print()
    print("| method | alpha | rho (mean +- s.e. over clips) | frac_rho>0.9 | d_intensity | id_drift | rot_drift_deg |")
    print("|---|---|---|---|---|---|---|")
    for alpha in alphas:
        for m in methods:
            rows = [r for run in runs for r in run["rows"] if r["method"] == m and r["alpha"] == alpha]
            rho = np.array([r["rho"] for r in rows])
            se = rho.std(ddof=1) / np.sqrt(len(rho)) if len(rho) > 1 else float("nan")
            mean = {k: np.mean([r[k] for r in rows]) for k in ("frac_rho>0.9", "d_intensity", "id_drift",
                                                                 "rot_drift_deg")}
            print(f"| {m} | {alpha:g} | {rho.mean():.3f} +- {se:.3f} | {mean['frac_rho>0.9']:.3f} | "
                  f"{mean['d_intensity']:.3f} | {mean['id_drift']:.3f} | {mean['rot_drift_deg']:.2f} |")
    print(f"\n{len(runs)} source clips; generator sha1 {runs[0]['settings']['generator_sha1'][:12]}...")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
