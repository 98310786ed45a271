"""facegen's StyleGAN2 iteration beside NVlabs stylegan2-ada-pytorch's, on the same CPU, config and phases.

Needs a checkout of the peer (it is not vendored), named by ``$FACEGEN_PEER_NVLABS``::

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch && git -C stylegan2-ada-pytorch checkout d72cc7d
    FACEGEN_PEER_NVLABS=$PWD/stylegan2-ada-pytorch python benchmarks/run.py stylegan2_peer

Each measurement is a fresh process of ``benchmarks/peers/stylegan2_iteration.py`` (one thread), and the
implementations alternate round by round, so a load that changes during the run affects both alike; the
ratio ``facegen / NVlabs`` of the medians is the figure (below 1: facegen is faster). Config: z = w = 512,
2 mapping layers, channel_base 16384, channel_max 512, batch 4, 64 px. Rows: G main + D main; the same + R1;
the amortised real step (path length every 4th, R1 every 16th, ADA bgc p = 0.2, EMA) — facegen's through its
LightningModule. facegen runs in float32 (as NVlabs on a CPU) and in its CPU recipe, bf16 autocast +
channels-last (NVlabs has no CPU low-precision path: its fp16 blocks are float16 convolutions).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "peers" / "stylegan2_iteration.py"
PEER_COMMIT = "d72cc7d041b42ec8e806021a205ed9349f87c6a4"
VARIANTS = {  # name -> arguments of the iteration script
    "nvlabs_fp32": ["--impl", "nvlabs"],
    "facegen_fp32": ["--impl", "facegen"],
    "facegen_bf16_cl": ["--impl", "facegen", "--precision", "bf16", "--channels-last"],
}


def measure(variant: str, phases: str, iters: int, nvlabs: str) -> float:
    args = [sys.executable, str(SCRIPT), *VARIANTS[variant], "--phases", phases, "--iters", str(iters),
            "--nvlabs", nvlabs]
    out = subprocess.run(args, capture_output=True, text=True, timeout=3600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["mean_s"]


def run(rounds: dict[str, int] | None = None) -> list[dict]:
    nvlabs = os.environ.get("FACEGEN_PEER_NVLABS")
    if not nvlabs or not (Path(nvlabs) / "training" / "networks.py").is_file():
        return [{"name": "stylegan2_vs_nvlabs", "device": "cpu", "skipped":
                 f"set FACEGEN_PEER_NVLABS to a checkout of NVlabs/stylegan2-ada-pytorch at {PEER_COMMIT[:7]}"}]
    rounds = rounds or {"main": 3, "r1": 3, "real": 1}
    rows = []
    for phases, n in rounds.items():
        seconds = {v: [] for v in VARIANTS}
        for _ in range(n):
            for variant in VARIANTS:
                seconds[variant].append(measure(variant, phases, 2 if phases != "real" else 1, nvlabs))
        peer = statistics.median(seconds["nvlabs_fp32"])
        for variant in VARIANTS:
            value = statistics.median(seconds[variant])
            rows.append({"name": f"stylegan2_{phases}_iteration_{variant}", "device": "cpu (1 thread)",
                         "value": round(value, 3), "unit": "s/iteration",
                         "params": {"ratio_to_nvlabs": round(value / peer, 3), "rounds": n,
                                    "all_s": [round(s, 3) for s in seconds[variant]], "peer_commit": PEER_COMMIT[:7],
                                    "config": "z=w=512, map 2, cbase 16384, cmax 512, batch 4, 64 px"}})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
