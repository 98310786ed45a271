"""`make bench`: run every ``benchmarks/bench_*.py`` and write ``benchmarks/results/<device>.json`` + ``.md``.

Each benchmark module exposes ``run() -> list[dict]``; a row holds at least ``name``, ``device``,
``value``, ``unit`` and ``params`` (a dict), or ``skipped`` with the reason. Select modules with
``python benchmarks/run.py render stylegan2``;
rows of the benchmarks not selected are kept from the previous results file.
"""
from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))  # benchmark modules are importable by name (spawned workers re-import them)

from facegen.reporting import markdown_table  # noqa: E402
from facegen.utils import atomic_write  # noqa: E402


def load(path: Path):
    return importlib.import_module(path.stem)


def main(selected: list[str]) -> None:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu-{torch.get_num_threads()}threads"
    rows = []
    for path in sorted(HERE.glob("bench_*.py")):
        if selected and path.stem.removeprefix("bench_") not in selected:
            continue
        print(f"[bench] {path.stem} ...", flush=True)
        start = time.perf_counter()
        for row in load(path).run():
            row = {"benchmark": path.stem.removeprefix("bench_"), **row}
            rows.append(row)
            print(f"  {row.get('name')}: {row.get('value', row.get('skipped'))} {row.get('unit', '')}", flush=True)
        print(f"  ({time.perf_counter() - start:.1f} s)", flush=True)
    meta = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    stem = HERE / "results" / device.replace(" ", "_")
    if stem.with_suffix(".json").is_file():  # keep the rows of benchmarks not run this time
        ran = {row["benchmark"] for row in rows}
        previous = json.loads(stem.with_suffix(".json").read_text())["results"]
        rows = [row for row in previous if row["benchmark"] not in ran] + rows
    atomic_write(stem.with_suffix(".json"), json.dumps({"meta": meta, "results": rows}, indent=2, default=str))
    table = [{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()} for r in rows]
    header = "# facegen benchmarks\n\n" + "".join(f"- {k}: {v}\n" for k, v in meta.items()) + "\n"
    atomic_write(stem.with_suffix(".md"), header + markdown_table(table))
    print(f"[bench] results: {stem.with_suffix('.json')} and .md")


if __name__ == "__main__":
    main(sys.argv[1:])
