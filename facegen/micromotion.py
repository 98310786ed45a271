"""Micromotion subspaces: ``python -m facegen.micromotion ckpt_path=G video=clip.mp4 target=photo.png``.

Wu et al., CPAL 2024 ("Decoding Micromotion in Low-dimensional Latent Spaces from StyleGAN"): anchors
of one identity (``anchors=video``: frames inverted into W+; ``anchors=text``: StyleCLIP optimisation;
``anchors=file``: a saved anchors .npz) -> per-layer robust PCA and a rank-k subspace -> edit direction
``dV`` -> frames ``G(w + alpha * t * dV)`` of a projected ``target`` photo (or generated ``seeds``).
Real target photos and video frames are FFHQ-aligned first (``align=true``, ``video_anchors.align=true``:
:mod:`facegen.faces`, dlib's landmarks and the NVlabs ffhq-dataset recipe); generator-made images (seeds,
``facegen.generate`` PNGs) are not; the log says which. See ``conf/micromotion.yaml`` for the options and files.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from facegen.config.cli import prepare
from facegen.config.run_folder import RunFolder, holds_nothing
from facegen.config.values import parse_seeds
from facegen.editing.subspace import (
    decode_direction,
    edit_strengths,
    generator_sha1,
    layer_mask,
    load_direction,
    render_edit,
    save_direction,
    save_grid,
    seed_latents,
    to_frames,
    video_anchors,
)
from facegen.editing.subspace.anchors import load_anchors_w_plus, save_anchors
from facegen.editing.subspace.decomposition import MicromotionError
from facegen.editing.subspace.text_anchors import (
    degree_prompts,
    load_clip,
    text_anchors,
)
from facegen.errors import FacegenError
from facegen.imaging import list_images, write_video
from facegen.models.stylegan2.formats import load_generator
from facegen.models.stylegan2.projection import (
    make_projection_loss,
    project,
    save_projection,
)
from facegen.project import load_photo_targets
from facegen.utils import atomic_write

log = logging.getLogger("facegen.micromotion")


def _anchors(cfg: DictConfig, G, loss_fn, out: Path):
    """W+ anchors ``[N, num_ws, w_dim]`` and a source description, by ``cfg.anchors``."""
    schedule = {k: v for k, v in OmegaConf.to_container(cfg.projection).items()
                if k not in ("num_steps", "warm_start", "warm_steps", "target_optimize_noise")}
    if cfg.anchors == "video":
        if cfg.video is None:
            raise MicromotionError("anchors=video needs video=<clip of one identity>")
        va = cfg.video_anchors
        anchors = video_anchors(G, cfg.video, count=va.count, stride=va.stride, start=va.start, stop=va.stop,
                                box=None if va.box is None else list(va.box), landmarks=va.landmarks,
                                align=va.get("align", True),
                                loss_fn=loss_fn, num_steps=cfg.projection.num_steps,
                                warm_start=cfg.projection.warm_start, warm_steps=cfg.projection.warm_steps,
                                seed=cfg.seed, log=log.info, **schedule)
    elif cfg.anchors == "text":
        ta = cfg.text_anchors
        clip = load_clip(ta.clip_model, ta.clip_checkpoint, cfg.device)
        w_source = seed_latents(G, [ta.source_seed], cfg.truncation_psi).to(cfg.device)
        anchors = text_anchors(G, w_source, degree_prompts(ta.template, list(ta.degrees)), clip,
                               num_steps=ta.num_steps, initial_learning_rate=ta.initial_learning_rate,
                               l2_lambda=ta.l2_lambda, id_lambda=ta.id_lambda)
    elif cfg.anchors == "file":
        if cfg.anchors_file is None:
            raise MicromotionError("anchors=file needs anchors_file=<.npz with w_plus [N, num_ws, w_dim]>")
        return torch.from_numpy(load_anchors_w_plus(cfg.anchors_file)), f"anchors file {cfg.anchors_file}"
    else:
        raise MicromotionError(f"anchors must be video, text or file; got {cfg.anchors!r}")
    save_anchors(out / "anchors.npz", anchors)
    save_grid(out / "anchors.png", torch.stack([anchors.targets, anchors.images]))
    return anchors.w_plus, anchors.source


def _start_latents(cfg: DictConfig, G, loss_fn, out: Path):
    """``(names, w_plus [B, num_ws, w_dim], noise or None)``: projected ``target`` images or generated ``seeds``."""
    if cfg.target is None:
        seeds = parse_seeds(cfg.seeds)
        log.info("seeds %s: generator-made latents, nothing to align", seeds)
        return [f"seed{s:04d}" for s in seeds], seed_latents(G, seeds, cfg.truncation_psi), None
    files = list_images(cfg.target)
    targets = load_photo_targets(files, G, cfg.align, cfg.align_no_face, out, log).to(cfg.device)
    schedule = {k: v for k, v in OmegaConf.to_container(cfg.projection).items()
                if k not in ("warm_start", "warm_steps", "optimize_noise", "target_optimize_noise", "latent_space")}
    result = project(G, targets, loss_fn, latent_space="w_plus", seed=cfg.seed,
                     optimize_noise=cfg.projection.target_optimize_noise, **schedule)
    names = [f"target_{p.stem}" for p in files]
    save_projection(result, out, names)
    return names, result.w_plus.cpu(), result.noise


def run(cfg: DictConfig) -> dict:
    """Decode (or load) a direction and render its edit; return a summary (paths, seconds)."""
    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    G, _ = load_generator(cfg.ckpt_path)
    G = G.to(cfg.device).eval()
    loss_fn = make_projection_loss(cfg.loss.vgg16_path, cfg.loss.lpips_path, l1_weight=cfg.loss.l1_weight,
                                   l2_weight=cfg.loss.l2_weight, ms_ssim_weight=cfg.loss.ms_ssim_weight)
    summary: dict = {"ckpt_path": str(cfg.ckpt_path)}
    if cfg.direction_path is not None:
        direction = load_direction(cfg.direction_path, G)
    else:
        w_plus, source = _anchors(cfg, G, loss_fn, out)
        summary["anchor_seconds"] = time.perf_counter() - start
        d = cfg.direction
        direction = decode_direction(w_plus, method=d.method, rank=d.rank, lam=d.lam, centre=d.centre,
                                     layers=None if d.layers is None else list(d.layers),
                                     alpha_range=list(d.alpha_range), source=source,
                                     generator_sha1=generator_sha1(G))
        save_direction(out / "direction.npz", direction)
        summary["direction"] = str(out / "direction.npz")
    log.info("direction %s (rank %d, |dV| %.3f, layers %s)", direction.method, direction.rank,
             float((direction.dv ** 2).sum() ** 0.5), direction.layers)

    t0 = time.perf_counter()
    names, w0, noise = _start_latents(cfg, G, loss_fn, out)
    summary["target_seconds"] = time.perf_counter() - t0
    a = cfg.apply
    mask = layer_mask(G.num_ws, None if a.layers is None else list(a.layers),
                      None if a.layer_weights is None else list(a.layer_weights))
    strengths = edit_strengths(direction, a.num_frames, alpha=a.alpha)
    frames = render_edit(G, w0, direction, strengths, mask=mask, noise=noise)        # [B, T, C, H, W]
    if a.video_format not in ("mp4", "gif"):
        raise MicromotionError(f"apply.video_format must be mp4 or gif; got {a.video_format!r}")
    videos = [str(write_video(out / f"edit_{name}.{a.video_format}", to_frames(frames[i], a.scale), fps=a.fps))
              for i, name in enumerate(names)]
    save_grid(out / "edit_grid.png", frames)
    summary.update(videos=videos, grid=str(out / "edit_grid.png"), strengths=strengths.tolist(),
                   seconds=time.perf_counter() - start)
    atomic_write(out / "summary.json", json.dumps(summary, indent=1))
    log.info("wrote %s and %d video(s) in %.1f s", summary.get("direction", cfg.direction_path), len(videos),
             summary["seconds"])
    return summary


@hydra.main(config_path="conf", config_name="micromotion", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        with RunFolder(cfg.out, trained=lambda: not holds_nothing(Path(cfg.out))):
            run(cfg)
    except FacegenError as error:
        raise SystemExit(f"facegen.micromotion: {type(error).__name__}: {error}") from error


if __name__ == "__main__":
    sys.argv[1:] = prepare("micromotion", sys.argv[1:])
    main()
