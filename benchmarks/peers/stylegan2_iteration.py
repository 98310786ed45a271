"""One StyleGAN2 training iteration, timed in facegen or in NVlabs stylegan2-ada-pytorch, on the same config.

Run one implementation per process (``benchmarks/bench_stylegan2_peer.py`` alternates them and reports the
ratio); prints one JSON line ``{"impl", "phases", "precision", "seconds": [per iteration ...], ...}``.

  python benchmarks/peers/stylegan2_iteration.py --impl facegen --phases main
  python benchmarks/peers/stylegan2_iteration.py --impl nvlabs --nvlabs <checkout> --phases main

The peer is not vendored: ``--nvlabs`` is a checkout of https://github.com/NVlabs/stylegan2-ada-pytorch at
commit d72cc7d041b42ec8e806021a205ed9349f87c6a4 (its CPU path: the reference ``upfirdn2d``/``bias_act`` ops,
no CUDA plugin). Config (as issue 16 sets it): z = w = 512, 2 mapping layers, channel_base 16384,
channel_max 512, batch 4, 64 px, no conv clamp, float32 unless ``--precision bf16``.

Phases, each as NVlabs ``training_loop.py`` runs it (zero_grad, requires_grad on the phase's module,
``accumulate_gradients``, ``nan_to_num``, Adam step):

- ``main``: G main (non-saturating loss, style mixing 0.9) + D main (logistic loss);
- ``r1``: ``main`` + D reg (R1, gamma 1, gain = interval 16);
- ``real``: the amortised real step over 16 iterations: G main, G reg (path length) every 4th, D main, D reg
  every 16th, ADA ``bgc`` at p = 0.2 (fixed), G_ema update (facegen: its StyleGAN2 module's
  ``training_step`` and EMA callback through Lightning; NVlabs: the training loop's phases and EMA).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
CONFIG = dict(z_dim=512, w_dim=512, mapping_layers=2, channel_base=16384, channel_max=512, resolution=64, batch=4)
R1_GAMMA, R1_INTERVAL, PL_INTERVAL = 1.0, 16, 4


def autocast(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def nvlabs_iteration(checkout: str, phases: str, precision: str):
    """A callable running one iteration of NVlabs' networks and loss (``training/loss.py``)."""
    sys.path.insert(0, checkout)
    from training.augment import AugmentPipe  # noqa: E402  (the peer's own code, from its checkout)
    from training.loss import StyleGAN2Loss  # noqa: E402
    from training.networks import Discriminator, Generator  # noqa: E402

    c = CONFIG
    fp16 = dict(num_fp16_res=4, conv_clamp=256) if precision == "bf16" else dict(num_fp16_res=0, conv_clamp=None)
    G = Generator(z_dim=c["z_dim"], c_dim=0, w_dim=c["w_dim"], img_resolution=c["resolution"], img_channels=3,
                  mapping_kwargs=dict(num_layers=c["mapping_layers"]),
                  synthesis_kwargs=dict(channel_base=c["channel_base"], channel_max=c["channel_max"], **fp16))
    D = Discriminator(c_dim=0, img_resolution=c["resolution"], img_channels=3, channel_base=c["channel_base"],
                      channel_max=c["channel_max"], **fp16)
    G_ema = Generator(**G.init_kwargs).eval().requires_grad_(False)
    G_ema.load_state_dict(G.state_dict())
    pipe = None
    if phases == "real":
        pipe = AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1,
                           contrast=1, lumaflip=1, hue=1, saturation=1).train().requires_grad_(False)
        pipe.p.copy_(torch.as_tensor(0.2))
    loss = StyleGAN2Loss(torch.device("cpu"), G.mapping, G.synthesis, D, augment_pipe=pipe, r1_gamma=R1_GAMMA,
                         pl_weight=2.0 if phases == "real" else 0.0)
    opt_g = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
    real = torch.rand(c["batch"], 3, c["resolution"], c["resolution"]) * 2 - 1
    empty = torch.zeros(c["batch"], 0)
    schedule = [("Gmain", G, opt_g, 1), ("Dmain", D, opt_d, 1)]
    if phases == "r1":
        schedule.append(("Dreg", D, opt_d, R1_INTERVAL))
    if phases == "real":
        schedule = [("Gmain", G, opt_g, 1), ("Greg", G, opt_g, PL_INTERVAL), ("Dmain", D, opt_d, 1),
                    ("Dreg", D, opt_d, R1_INTERVAL)]
    state = {"batch_idx": 0, "cur_nimg": 0}

    def run(index: int) -> None:
        for name, module, opt, interval in schedule:
            if phases == "real" and state["batch_idx"] % interval != 0:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            with autocast(precision):
                loss.accumulate_gradients(phase=name, real_img=real, real_c=empty, gen_z=torch.randn(c["batch"], 512),
                                          gen_c=empty, sync=True, gain=interval)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        if phases == "real":
            ema_nimg = min(10_000, state["cur_nimg"] * 0.05)
            beta = 0.5 ** (c["batch"] / max(ema_nimg, 1e-8))
            with torch.no_grad():
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.copy_(p.lerp(p_ema, beta))
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)
        state["batch_idx"] += 1
        state["cur_nimg"] += c["batch"]

    return run


def facegen_iteration(phases: str, precision: str, channels_last: bool = False):
    """A callable running one iteration of facegen's networks and losses, phase for phase as NVlabs."""
    sys.path.insert(0, str(REPO))
    from facegen.models.gan import r1_penalty
    from facegen.models.stylegan2 import Discriminator, Generator
    from facegen.models.stylegan2.losses import discriminator_loss, generator_loss, mix_styles

    c = CONFIG
    fp16 = dict(num_fp16_res=4, conv_clamp=256) if precision == "bf16" else dict(num_fp16_res=0, conv_clamp=None)
    if phases == "real":
        return facegen_real_step(precision, {**fp16, "channels_last": channels_last})
    G = Generator(z_dim=c["z_dim"], w_dim=c["w_dim"], img_resolution=c["resolution"], mapping_layers=c["mapping_layers"],
                  channel_base=c["channel_base"], channel_max=c["channel_max"], channels_last=channels_last, **fp16)
    D = Discriminator(img_resolution=c["resolution"], channel_base=c["channel_base"], channel_max=c["channel_max"],
                      channels_last=channels_last, **fp16)
    opt_g = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
    real = torch.rand(c["batch"], 3, c["resolution"], c["resolution"]) * 2 - 1

    def step(module, opt, fn, gain=1) -> None:
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)
        with autocast(precision):
            (fn() * gain).backward()
        module.requires_grad_(False)
        for p in module.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()

    def fake(z):
        ws = mix_styles(G.mapping, z, None, G.mapping(z, None, update_w_avg=True), 0.9)
        return G.synthesis(ws, noise_mode="random")

    def g_main():
        return generator_loss(D(fake(torch.randn(c["batch"], 512))))

    def d_main():
        with torch.no_grad():
            images = fake(torch.randn(c["batch"], 512))
        return discriminator_loss(D(real), D(images))

    def d_reg():
        x = real.detach().requires_grad_(True)
        logits = D(x)
        return (logits[:, 0] * 0 + r1_penalty(x, logits) * (R1_GAMMA / 2)).mean()

    def run(index: int) -> None:
        step(G, opt_g, g_main)
        step(D, opt_d, d_main)
        if phases == "r1":
            step(D, opt_d, d_reg, gain=R1_INTERVAL)

    return run


def facegen_real_step(precision: str, fp16: dict):
    """facegen's StyleGAN2 LightningModule stepping through Lightning (ADA at p = 0.2 fixed, EMA callback)."""
    import lightning.pytorch as pl

    from facegen.models.stylegan2 import StyleGAN2

    c = CONFIG
    module = StyleGAN2(
        img_resolution=c["resolution"], img_channels=3, c_dim=0,
        generator={"_target_": "facegen.models.stylegan2.Generator", "z_dim": c["z_dim"], "w_dim": c["w_dim"],
                   "mapping_layers": c["mapping_layers"], "channel_base": c["channel_base"],
                   "channel_max": c["channel_max"], **fp16},
        discriminator={"_target_": "facegen.models.stylegan2.Discriminator", "channel_base": c["channel_base"],
                       "channel_max": c["channel_max"], **fp16},  # fp16 holds num_fp16_res, conv_clamp, channels_last
        loss={"r1_gamma": R1_GAMMA, "r1_interval": R1_INTERVAL, "pl_interval": PL_INTERVAL},
        augment={"pipeline": "bgc", "p": 0.2, "target": None}, ema={"kimg": 10.0, "rampup": 0.05},
        grid={"every_kimg": 0.0})
    times: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_start(self, *args):
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args):
            times.append(time.perf_counter() - self.start)

    data = torch.utils.data.TensorDataset(torch.rand(c["batch"] * 64, 3, c["resolution"], c["resolution"]) * 2 - 1)
    loader = torch.utils.data.DataLoader(data, batch_size=c["batch"])

    def run_all(iterations: int) -> list[float]:
        trainer = pl.Trainer(accelerator="cpu", max_steps=-1, limit_train_batches=iterations, max_epochs=1,
                             precision="bf16-mixed" if precision == "bf16" else "32-true", logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[Clock()])
        trainer.fit(module, loader)
        return times

    return run_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["facegen", "nvlabs"], required=True)
    parser.add_argument("--nvlabs", help="checkout of NVlabs/stylegan2-ada-pytorch at d72cc7d")
    parser.add_argument("--phases", choices=["main", "r1", "real"], default="main")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels-last", action="store_true", help="facegen only: channels-last G and D")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.impl == "nvlabs" and not args.nvlabs:
        parser.error("--impl nvlabs needs --nvlabs <checkout>")
    if args.impl == "facegen" and args.phases == "real":
        run_all = facegen_iteration(args.phases, args.precision, args.channels_last)
        seconds = run_all(2 + 16 * args.iters)[2:]  # 2 warm-up batches, then whole regulariser cycles
    else:
        run = facegen_iteration(args.phases, args.precision, args.channels_last) if args.impl == "facegen" else \
            nvlabs_iteration(args.nvlabs, args.phases, args.precision)
        warmup = 2 if args.phases == "real" else 1
        for i in range(warmup):
            run(i)
        seconds = []
        count = args.iters * (16 if args.phases == "real" else 1)
        for i in range(count):
            start = time.perf_counter()
            run(i)
            seconds.append(time.perf_counter() - start)
    print(json.dumps({"impl": args.impl, "phases": args.phases, "precision": args.precision, "threads": args.threads,
                      "channels_last": args.channels_last,
                      "seconds": seconds, "median_s": statistics.median(seconds),
                      "mean_s": statistics.fmean(seconds)}))


if __name__ == "__main__":
    main()
