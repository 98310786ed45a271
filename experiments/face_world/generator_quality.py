"""Quality of face-world generators against ground truth, in face-regressor features, beside the floors.

    python experiments/face_world/generator_quality.py --regressor <regressor.pt> --real <real_a> --real-b <real_b> \
        --out experiments/face_world/quality.md <generator files or checkpoints ...>

For each generator: Fréchet distance and Kynkäänniemi precision / recall (k = 3) in the face regressor's features
(``fd_regressor``: NOT Inception FID), the mean 1-D Wasserstein distances of the regressed parameters (rotation in
degrees, expression, SH light, ...), and ``kimg`` when the file records it; the floor row compares two independent
sets of real renders at the same sample size. The real sets come from ``python -m facegen.synth images n=5000
resolution=64 seed=7001`` (and ``seed=7002``). Writes a Markdown table and a JSON file beside it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facegen.checkpoints import load_any
from facegen.models.quality import GeneratorQuality
from facegen.models.stylegan2.formats import load_generator
from facegen.reporting import write_table


def kimg_of(path: str) -> float | None:
    blob = load_any(path)
    if isinstance(blob, dict) and "meta" in blob:
        return blob["meta"].get("kimg")
    state = blob.get("stylegan2_state") if isinstance(blob, dict) else None
    return round(state["cur_nimg"] / 1000, 1) if state else None


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generators", nargs="+")
    parser.add_argument("--regressor", required=True)
    parser.add_argument("--real", required=True)
    parser.add_argument("--real-b", required=True)
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--out", required=True, help="a .md path; the .json is written beside it")
    args = parser.parse_args(argv)
    quality = GeneratorQuality(args.regressor, args.real, args.real_b, num_samples=args.num_samples)
    rows = [{"generator": "floor (real renders vs real renders)", "kimg": None, **quality.floor()}]
    for path in args.generators:
        G, _ = load_generator(path)
        rows.append({"generator": Path(path).name, "kimg": kimg_of(path), **quality(G)})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    write_table(rows, out.with_suffix(""))
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
