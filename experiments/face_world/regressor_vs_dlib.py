"""The face-world regressor's 68 landmarks against dlib's on real photos (ORL, Yale, face_photos), at 64 px.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/face_world/regressor_vs_dlib.py [regressor.pt] [out.json]
    # default regressor /work/gen/face_world/regressor.pt (64 px RGB, trained on face-world renders only)

Per photo, dlib (facegen.faces: HOG detector + shape_predictor_68) gives the reference landmarks on the full photo.
The regressor sees a 64x64 RGB picture of the photo in three framings, and dlib's landmarks are mapped into each:

- ``centre``: the centre square resized to 64 (what ``load_targets`` gives a generator);
- ``ffhq``: the FFHQ-aligned crop (facegen.faces.align_ffhq), the StyleGAN convention;
- ``faceworld``: the similarity warp that puts dlib's landmarks best onto the regressor's mean training
  landmarks (face-world framing: the most favourable case; it uses dlib's landmarks to frame).

Errors in pixels at 64 px: mean point-to-point distance (``mean_px``); after the similarity (Umeyama) fit of the
prediction to dlib's points (``shape_px``: shape only, framing removed); the constant prediction = the regressor's
mean training landmarks (``mean_face_px``, what predicting nothing scores); NME = mean error over dlib's outer
eye-corner distance (36-45). Calibration row: the face-world test set (500 renders with ground truth): the
regressor and dlib against the ground truth. Writes a JSON report and prints the Markdown table.
"""
from __future__ import annotations

import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegen import faces
from facegen.augment.driving import similarity_fit
from facegen.models.face_regressor import load_face_regressor

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
R = 64
# the regressor's held-out face-world renders (facegen.data.synthetic.write_image_dataset, 64 px, with truth)
TEST_PRESETS = Path(os.environ.get("FACEGEN_FACEWORLD_TEST", "/work/fw/data/test_presets"))
regressor_path = sys.argv[1] if len(sys.argv) > 1 else "/work/gen/face_world/regressor.pt"
report_path = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "runs" / "face_world" / "regressor_vs_dlib.json"
model = load_face_regressor(regressor_path)
mean_lm = (model.target_mean[model.slices["landmarks"]].view(68, 2).double().numpy())      # pixels at 64 px


def affine(photo: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """64x64 picture of ``photo`` under the photo -> picture affine map ``matrix [3, 3]`` (bicubic)."""
    inverse = np.linalg.inv(matrix)
    # PIL maps output pixel (x + 0.5, y + 0.5) through the coefficients to input continuous coordinates
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
    coeffs = (shift @ inverse @ np.linalg.inv(shift))[:2].flatten()
    return np.asarray(Image.fromarray(photo).transform((R, R), Image.AFFINE, tuple(coeffs), Image.BICUBIC))


def framings(photo: np.ndarray, lm: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (64x64 picture, dlib's landmarks mapped into it)."""
    h, w = photo.shape[:2]
    side = min(w, h)
    x0, y0 = (w - side) // 2, (h - side) // 2
    scale = R / side
    centre = np.array([[scale, 0, -x0 * scale + 0.5 * scale - 0.5], [0, scale, -y0 * scale + 0.5 * scale - 0.5],
                       [0, 0, 1.0]])
    aligned = faces.align_ffhq(photo, lm, R)
    s, rot, t = similarity_fit(lm, mean_lm)
    world = np.eye(3)
    world[:2, :2], world[:2, 2] = s * rot, t
    return {"centre": (affine(photo, centre), faces.apply_transform(centre, lm)),
            "ffhq": (aligned.image, aligned.landmarks),
            "faceworld": (affine(photo, world), faces.apply_transform(world, lm))}


def errors(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    iod = np.linalg.norm(ref[45] - ref[36])
    s, rot, t = similarity_fit(pred, ref)
    fitted = s * pred @ rot.T + t
    d = np.linalg.norm(pred - ref, axis=-1).mean()
    return {"mean_px": d, "shape_px": np.linalg.norm(fitted - ref, axis=-1).mean(),
            "mean_face_px": np.linalg.norm(mean_lm - ref, axis=-1).mean(), "nme": d / iod}


def predict(pictures: list[np.ndarray]) -> np.ndarray:
    x = torch.from_numpy(np.stack(pictures).astype(np.float32)).permute(0, 3, 1, 2) / 127.5 - 1
    return torch.cat([model.predict(x[i:i + 64])["landmarks"] for i in range(0, len(x), 64)]).double().numpy()


def photos(name: str):
    if name == "orl":
        for path in sorted((DATA / "orl_faces").glob("s*/*.pgm")):
            yield path
    elif name == "yale":
        yield from sorted((DATA / "yalefaces").glob("subject*"))
    else:
        yield from sorted((DATA / "face_photos").glob("*.png"))


rows, report = [], {"regressor": regressor_path, "sets": {}}
for name in ("orl", "yale", "face_photos"):
    start = time.perf_counter()
    per_framing: dict[str, list] = {"centre": [], "ffhq": [], "faceworld": []}
    count, missing = 0, 0
    for path in photos(name):
        photo = faces.as_rgb(Image.open(path))
        face, _ = faces.largest_face(photo)
        if face is None:
            missing += 1
            continue
        count += 1
        for key, (picture, ref) in framings(photo, face.landmarks).items():
            per_framing[key].append((picture, ref))
    result = {"photos": count + missing, "no_face": missing, "seconds": round(time.perf_counter() - start, 1)}
    for key, items in per_framing.items():
        preds = predict([p for p, _ in items])
        e = [errors(pred, ref) for pred, (_, ref) in zip(preds, items)]
        result[key] = {k: float(np.mean([x[k] for x in e])) for k in e[0]}
        rows.append((name, count, missing, key, result[key]))
    report["sets"][name] = result
    print(name, json.dumps(result), flush=True)

# calibration on the regressor's own domain: face-world renders with ground-truth landmarks
archive = zipfile.ZipFile(TEST_PRESETS / "faces.zip") if (TEST_PRESETS / "faces.zip").is_file() else None
if archive is not None:
    params = np.load(TEST_PRESETS / "params.npz")
    names, truth = [str(n) for n in params["names"]], params["landmarks"].astype(np.float64)
    pictures = [faces.as_rgb(Image.open(io.BytesIO(archive.read(n)))) for n in names]
    reg = [errors(p, t) for p, t in zip(predict(pictures), truth)]
    dl, dl_missing = [], 0
    for picture, t in zip(pictures, truth):
        face, _ = faces.largest_face(picture)
        if face is None:
            dl_missing += 1
        else:
            dl.append(errors(face.landmarks, t))
    report["face_world_test_presets"] = {
        "n": len(names), "regressor_vs_truth": {k: float(np.mean([x[k] for x in reg])) for k in reg[0]},
        "dlib_vs_truth": {k: float(np.mean([x[k] for x in dl])) for k in dl[0]} if dl else None,
        "dlib_no_face": dl_missing}
    print("face world", json.dumps(report["face_world_test_presets"]), flush=True)

report_path.parent.mkdir(parents=True, exist_ok=True)
report_path.write_text(json.dumps(report, indent=1))
print("| set | photos with a dlib face (of all) | framing | regressor vs dlib, mean px | shape only px | NME | "
      "mean-face prediction px |")
print("|---|---|---|---|---|---|---|")
for name, count, missing, key, e in rows:
    print(f"| {name} | {count} ({count + missing}) | {key} | {e['mean_px']:.2f} | {e['shape_px']:.2f} | "
          f"{e['nme']:.3f} | {e['mean_face_px']:.2f} |")
if archive is not None:
    fw = report["face_world_test_presets"]
    for who in ("regressor_vs_truth", "dlib_vs_truth"):
        e = fw[who]
        if e:
            found = fw["n"] - (fw["dlib_no_face"] if who.startswith("dlib") else 0)
            print(f"| face world test_presets (renders) | {found} ({fw['n']}) | native, {who.replace('_', ' ')} | "
                  f"{e['mean_px']:.2f} | {e['shape_px']:.2f} | {e['nme']:.3f} | {e['mean_face_px']:.2f} |")
