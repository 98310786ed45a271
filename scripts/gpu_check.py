"""Run each model a few steps on CUDA under each trainer config; write finite-loss checks and timings as JSON.

Timing: two runs per case, ``limit_train_batches`` = 3 and 13; (wall(13) - wall(3)) / 10 is the seconds per
iteration with start-up, data generation and compilation cancelled out. Called by ``scripts/gpu_check.sh``.
"""
from __future__ import annotations

import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from facegen.runner import train

REPO = Path(__file__).resolve().parents[1]
MODELS = {  # model -> (overrides, images per iteration for s/kimg; None where kimg means nothing)
    "facetunegan": (["model=facetunegan"], None),
    "stylegan2": (["model=stylegan2", "data.n=256", "data.resolution=64", "data.batch_size=16"], 16),
}
TRAINERS = {"gpu": ["trainer=gpu"], "bf16": ["trainer=bf16"], "fp16": ["trainer=fp16"],
            "ddp": ["trainer=ddp", "trainer.devices=1"]}


def run(model: list[str], trainer: list[str], batches: int, root: Path) -> tuple[float, dict]:
    folder = Path(tempfile.mkdtemp(dir=root))
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            *model, *trainer, "trainer.max_epochs=1", f"+trainer.limit_train_batches={batches}",
            "+trainer.limit_val_batches=0", "logger=none", "run_name=gpu_check", "evaluate_after_fit=false",
            f"paths.output_dir={folder / 'run'}", f"paths.cache_dir={root / 'cache'}"])
    start = time.perf_counter()
    result = train(cfg)
    return time.perf_counter() - start, {k: float(v) for k, v in result["metrics"].items()}


def main(out: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="facegen_gpu_check_"))
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "python": platform.python_version(),
              "cases": []}
    for name, (overrides, batch) in MODELS.items():
        for trainer, trainer_overrides in TRAINERS.items():
            case = {"model": name, "trainer": trainer}
            try:
                short, _ = run(overrides, trainer_overrides, 3, root)
                long, metrics = run(overrides, trainer_overrides, 13, root)
                case["s_per_iteration"] = (long - short) / 10
                if batch:
                    case["s_per_kimg"] = case["s_per_iteration"] * 1000 / batch
                case["losses"] = {k: v for k, v in metrics.items() if "loss" in k}
                case["finite"] = bool(case["losses"]) and all(math.isfinite(v) for v in case["losses"].values())
            except Exception as error:  # one failing case is reported, the others still run
                case["error"] = f"{type(error).__name__}: {error}"
                case["finite"] = False
            print(json.dumps(case), flush=True)
            report["cases"].append(case)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu_check: {sum(c['finite'] for c in report['cases'])}/{len(report['cases'])} cases finite -> {out}")
    sys.exit(0 if all(c["finite"] for c in report["cases"]) else 1)


if __name__ == "__main__":
    main(sys.argv[1])
