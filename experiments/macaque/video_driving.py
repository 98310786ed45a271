"""Motion transfer driven by a real video's landmarks, shown on human faces (ORL, Yale) at 64 px (CPU).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/macaque/video_driving.py [<out>]   # default runs/macaque_video_driving

1. stills: the first photo of ORL subjects s1-s6 and Yale subjects 01-06 (``normal``), FFHQ-aligned at 64 px by
   ``facegen.align`` (dlib's detector + 68 landmarks; the landmarks.json it writes gives the stills' keypoints);
2. driving: each real talking-head clip of ``../shared/data/videos`` through ``driving=<video>`` (dlib's 68
   landmarks per ``stride``-th frame, head motion removed by the similarity fit on the stable points,
   :func:`facegen.augment.driving.video_driving`), and the face-world driving (the default) for scale;
3. ``augment_dataset`` with 6 frames per still (the recipe's stage 1: ``recipe.augment.driving=<video>``).

Measured: driving displacement from the neutral frame (frame 0) in the clip's pixels, and the displacement the
stills' keypoints get at 64 px (mean over frames and stills, per region). Writes ``<out>/results.json``,
``<out>/<driving>/preview.png`` (stills, then their frames) and ``preview_landmarks.png``; prints a table.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from facegen.align import run as align_run
from facegen.augment import augment_dataset
from facegen.data.keypoints import MULTIPIE_68_REGIONS, load_keypoints

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "runs" / "macaque_video_driving"
REGIONS = ("jaw", "brows", "eyes", "mouth")
DRIVINGS = {"vox_driving2": (DATA / "videos" / "vox_driving2.mp4", 4), "vox_driving1": (DATA / "videos" / "vox_driving1.mp4", 10),
            "tpsmm_driving": (DATA / "videos" / "tpsmm_driving.mp4", 3), "faceworld": ("faceworld", 1)}

stills = out / "stills"
stills.mkdir(parents=True, exist_ok=True)
for s in range(1, 7):
    shutil.copy(DATA / "orl_faces" / f"s{s}" / "1.pgm", stills / f"orl_s{s}.pgm")
    shutil.copy(DATA / "yalefaces" / f"subject{s:02d}.normal", stills / f"yale_subject{s:02d}_normal.gif")
with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
    cfg = compose("align", overrides=[f"in={stills}", f"out={out / 'aligned'}", "resolution=64"])
aligned = align_run(cfg)
report = {"stills": aligned["crops"], "skipped_without_face": aligned["skipped"], "drivings": {}}
still_kp = load_keypoints(out / "aligned" / "landmarks.json")

for name, (driving, stride) in DRIVINGS.items():
    start = time.perf_counter()
    result = augment_dataset(out / "aligned" / "aligned", out / name, resolution=64, channels=3, frames_per_still=6,
                             landmarks=out / "aligned" / "landmarks.json", driving=driving, driving_stride=stride,
                             seed=0)
    summary = json.loads((out / name / "augment.json").read_text())
    kp = load_keypoints(out / name / "landmarks.json")
    moved = []                                                   # [stills * frames, 68] pixel displacement at 64 px
    for still in aligned["crops"]:
        stem = Path(still).stem
        base = still_kp[still]
        for f in range(6):
            member = f"{stem}_mt{f:02d}.png"
            if member in kp.points:
                moved.append(np.linalg.norm(kp.points[member] - base, axis=-1))
    moved = np.array(moved)
    report["drivings"][name] = {
        "source": summary["driving"], "stride": stride, "driving_frames": summary["driving_frames"],
        "driving_displacement_px": summary["driving_displacement_px"],
        "still_displacement_px_at_64": {"mean": float(moved.mean()), "p95": float(np.percentile(moved, 95)),
                                         **{r: float(moved[:, MULTIPIE_68_REGIONS[r]].mean()) for r in REGIONS}},
        "images": result.n_images, "seconds": round(time.perf_counter() - start, 1),
        "preview": str(out / name / "preview.png")}
    print(name, json.dumps(report["drivings"][name]["still_displacement_px_at_64"]), flush=True)

(out / "results.json").write_text(json.dumps(report, indent=1))
print("| driving | frames used | driving px (mean / p95 / max) | still px at 64 (mean / p95) | "
      + " | ".join(f"{r} px" for r in REGIONS) + " | seconds |")
print("|" + "---|" * (5 + len(REGIONS)))
for name, r in report["drivings"].items():
    d, m = r["driving_displacement_px"], r["still_displacement_px_at_64"]
    print(f"| {name} | {r['driving_frames']} | {d['mean']:.2f} / {d['p95']:.2f} / {d['max']:.2f} | "
          f"{m['mean']:.2f} / {m['p95']:.2f} | " + " | ".join(f"{m[k]:.2f}" for k in REGIONS) + f" | {r['seconds']} |")
