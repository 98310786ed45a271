"""FaceTuneGAN training speed and peak memory on real face topologies, batch 8.

One full training step = generator step (E_c, E_s, M, Dec, D on x_r and x_t, all losses of eq. 10,
backward, Adam) + discriminator step (real/fake, R1 penalty, backward, Adam), run through a Lightning
Trainer exactly as in training. Topologies: the CoMA/FLAME template (5,023 vertices, CoMA experiment
widths) and the ICT-FaceKit face area (vertices 0..9,408, default model widths); the meshes are
random perturbations of the template (speed does not depend on the values). Each case runs in a
fresh spawned process so that the CPU peak (``ru_maxrss`` increase over the process after start-up)
belongs to it alone; on CUDA the peak is ``torch.cuda.max_memory_allocated``.

``python benchmarks/bench_facetunegan.py`` prints the rows; ``run()`` returns them.
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BATCH = 8
WARMUP, REPEATS = 2, 4
# model.generator keys, plus disc_channels = model.discriminator.channels
COMA_SIZES = dict(channels=[32, 32, 32, 64], style_channels=[32, 32, 32, 64], disc_channels=[32, 32, 32, 64],
                  content_dim=4, style_dim=4, mapping_hidden=[128, 128, 16])
DEFAULT_SIZES = dict(channels=[16, 32, 32, 64], style_channels=[16, 32, 32, 64], disc_channels=[16, 32, 32, 64],
                     content_dim=16, style_dim=8, mapping_hidden=[128, 128, 16])
CASES = {
    "coma_template": (DATA / "coma_template" / "template.obj", 5023, 1000.0, COMA_SIZES),         # metres
    "ict_face_area": (DATA / "ict_facekit" / "FaceXModel" / "generic_neutral_mesh.obj", 9409, 10.0, DEFAULT_SIZES),
}


def _load(path: Path, num_vertices: int, to_mm: float) -> tuple[np.ndarray, np.ndarray]:
    from facegen.geometry import load_mesh

    mesh = load_mesh(path)
    faces = mesh.faces[(mesh.faces < num_vertices).all(axis=1)]
    return (mesh.vertices[:num_vertices] * to_mm).astype(np.float32), faces


def _measure(case: str, device: str, queue) -> None:
    """Child process: build the model, time training steps, report (s/step, peak bytes, info)."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback

    from facegen.models.facetunegan import FaceTuneGAN

    path, num_vertices, to_mm, sizes = CASES[case]
    template, faces = _load(path, num_vertices, to_mm)
    generator_block = {k: v for k, v in sizes.items() if k != "disc_channels"}
    model = FaceTuneGAN(template, faces, num_styles=20, style_names=[f"s{i}" for i in range(20)],
                        mean=template, std=np.ones_like(template), generator=generator_block,
                        discriminator={"channels": sizes["disc_channels"]}, evaluation={"val_triplets": 0})
    generator = torch.Generator().manual_seed(0)
    samples = [{"vertices": torch.randn(num_vertices, 3, generator=generator), "identity": torch.tensor(i % 4),
                "expression": torch.tensor(i % 20), "index": torch.tensor(i)} for i in range(BATCH)]
    loader = torch.utils.data.DataLoader(samples * (WARMUP + REPEATS), batch_size=BATCH)

    class StepTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def _sync(self) -> None:
            if device == "cuda":
                torch.cuda.synchronize()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            if batch_idx == WARMUP and device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            self._sync()
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self._sync()
            if batch_idx >= WARMUP:
                self.times.append(time.perf_counter() - self.start)

    timer = StepTimer()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    trainer = L.Trainer(max_epochs=1, accelerator="gpu" if device == "cuda" else "cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer], default_root_dir="/tmp/bench_facetunegan")
    trainer.fit(model, train_dataloaders=loader)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    params = sum(p.numel() for p in model.parameters())
    encoder = model.generator.content_encoder
    levels = [b.conv.num_vertices for b in encoder.blocks] + [encoder.res_blocks[0].conv1.num_vertices]
    queue.put((float(np.median(timer.times)), int(peak), {"parameters": params, "levels": levels}))


def run() -> list[dict]:
    """Throughput (meshes/s) and peak memory (MiB) of one training step, per topology and device."""
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    context = mp.get_context("spawn")
    rows = []
    for case, (path, num_vertices, _, sizes) in CASES.items():
        params = {"vertices": num_vertices, "batch": BATCH, "channels": sizes["channels"],
                  "content_dim": sizes["content_dim"], "style_dim": sizes["style_dim"]}
        if not path.is_file():
            rows.append({"name": f"facetunegan_train_{case}", "skipped": f"{path} not found", "params": params})
            continue
        for device in devices:
            queue = context.Queue()
            process = context.Process(target=_measure, args=(case, device, queue))
            process.start()
            seconds, peak, info = queue.get()
            process.join()
            label = device if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
            rows.append({"name": f"facetunegan_train_{case}", "device": label, "value": round(BATCH / seconds, 2),
                         "unit": "meshes/s", "params": {**params, **info, "step_s": round(seconds, 3)}})
            rows.append({"name": f"facetunegan_peak_memory_{case}", "device": label,
                         "value": round(peak / 2**20, 1), "unit": "MiB",
                         "params": {**params, "measure": "max_memory_allocated" if device == "cuda"
                                    else "ru_maxrss increase during fit"}})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
