"""StyleGAN2-ADA training speed: one G + D iteration as ``StyleGAN2.training_step`` runs it.

An iteration = G main (non-saturating loss, style mixing) + D main (logistic loss) with ADA at p = 0.2,
plus the lazy regularisers amortised: path length (every 4th iteration, half batch) and R1 (every 16th).
On CPU: seconds per iteration at 64x64 and 256x256, batch 4, float32, with the CPU-sized networks of
``conf/model/stylegan2.yaml`` (channel_base 8192, channel_max 256). On CUDA (when available): seconds per
thousand images (sec/kimg, as NVlabs reports) at 256x256, batch 32, NVlabs default sizes (channel_base
32768, channel_max 512), ``bf16-mixed`` (autocast; low-precision blocks in the 4 highest resolutions,
conv_clamp 256). ``python benchmarks/bench_stylegan2.py`` prints the rows.
"""
from __future__ import annotations

import contextlib
import time

import torch

from facegen.models.gan import r1_penalty
from facegen.models.stylegan2 import Discriminator, Generator
from facegen.models.stylegan2.ada import AugmentPipe
from facegen.models.stylegan2.losses import (
    discriminator_loss,
    generator_loss,
    mix_styles,
    path_length_penalty,
)

# CPU sizes of conf/model/stylegan2.yaml (NVlabs defaults take about 40 s per 64 px iteration on 2 CPU cores).
CPU_CHANNELS = {"channel_base": 8192, "channel_max": 256}


class Iteration:
    """Networks, optimisers and one training iteration (phases as ``StyleGAN2.training_step``)."""

    def __init__(self, resolution: int, batch: int, device: torch.device, mixed: bool, channels: dict):
        torch.manual_seed(0)
        fp16 = dict(num_fp16_res=4, conv_clamp=256) if mixed else {}
        self.G = Generator(img_resolution=resolution, **channels, **fp16).to(device)
        self.D = Discriminator(img_resolution=resolution, **channels, **fp16).to(device)
        self.pipe = AugmentPipe("bgc", p=0.2).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=0.0025 * 4 / 5, betas=(0.0, 0.99 ** (4 / 5)))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=0.0025 * 16 / 17, betas=(0.0, 0.99 ** (16 / 17)))
        self.real = torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1
        self.batch, self.device, self.mixed = batch, device, mixed
        self.pl_mean = torch.zeros([], device=device)

    def autocast(self):
        if self.mixed:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def fake(self, n: int):
        z = torch.randn(n, self.G.z_dim, device=self.device)
        ws = mix_styles(self.G.mapping, z, None, self.G.mapping(z, None, update_w_avg=True), 0.9)
        return self.G.synthesis(ws, noise_mode="random"), ws

    def step(self, optimizer, loss) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def __call__(self, index: int) -> None:
        with self.autocast():
            self.D.requires_grad_(False)
            self.step(self.opt_g, generator_loss(self.D(self.pipe(self.fake(self.batch)[0]))))
            if index % 4 == 0:
                images, ws = self.fake(self.batch // 2)
                penalty, self.pl_mean = path_length_penalty(images, ws, self.pl_mean)
                self.step(self.opt_g, (images[:, 0, 0, 0] * 0 + 2.0 * penalty).mean() * 4)
            self.D.requires_grad_(True)
            with torch.no_grad():
                fake = self.fake(self.batch)[0]
            self.step(self.opt_d, discriminator_loss(self.D(self.pipe(self.real)), self.D(self.pipe(fake))))
            if index % 16 == 0:
                real = self.real.detach().requires_grad_(True)
                logits = self.D(self.pipe(real))
                self.step(self.opt_d, (logits[:, 0] * 0 + r1_penalty(real, logits) * 5.0).mean() * 16)


def _mean_seconds(it: Iteration, index: int, iterations: int) -> float:
    sync = torch.cuda.synchronize if it.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(iterations):
        it(index)
    sync()
    return (time.perf_counter() - start) / iterations


def seconds_per_iteration(resolution: int, batch: int, device: torch.device, mixed: bool, iterations: int,
                          channels: dict) -> float:
    """Mean wall seconds per iteration with the lazy regularisers amortised at their rates:
    ``t_main + (t_pl - t_main) / 4 + (t_pl_r1 - t_pl) / 16`` (each timed over ``iterations`` after a warm-up)."""
    it = Iteration(resolution, batch, device, mixed, channels)
    it(0)  # warm-up, both regularisers
    t_main = _mean_seconds(it, 1, iterations)  # index 1: no regulariser
    t_pl = _mean_seconds(it, 4, iterations)  # index 4: path length only
    t_pl_r1 = _mean_seconds(it, 0, iterations)  # index 0: both
    return t_main + (t_pl - t_main) / 4 + (t_pl_r1 - t_pl) / 16


def run() -> list[dict]:
    """Rows: CPU seconds per iteration at 64 and 256 px (batch 4); CUDA sec/kimg at 256 px, bf16-mixed."""
    rows = []
    cpu = torch.device("cpu")
    for resolution in (64, 256):
        params = {"resolution": resolution, "batch": 4, "precision": "32-true", "ada_p": 0.2,
                  "threads": torch.get_num_threads(), **CPU_CHANNELS}
        value = seconds_per_iteration(resolution, 4, cpu, mixed=False, iterations=2, channels=CPU_CHANNELS)
        rows.append({"name": f"stylegan2_train_iter_{resolution}px", "device": "cpu", "value": round(value, 3),
                     "unit": "s/iteration", "params": params})
    if torch.cuda.is_available():
        batch = 32
        value = seconds_per_iteration(256, batch, torch.device("cuda"), mixed=True, iterations=10, channels={})
        rows.append({"name": "stylegan2_train_256px", "device": torch.cuda.get_device_name(0),
                     "value": round(value / batch * 1000, 2), "unit": "s/kimg",
                     "params": {"resolution": 256, "batch": batch, "precision": "bf16-mixed", "num_fp16_res": 4,
                                "ada_p": 0.2, "channel_base": 32768, "channel_max": 512}})
    else:
        rows.append({"name": "stylegan2_train_256px", "device": "cuda", "skipped": "no CUDA device"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
