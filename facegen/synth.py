"""Entry point: synthetic face datasets with ground truth.

``python -m facegen.synth images [key=value ...] [--key value ...]`` writes an NVlabs dataset zip, ``params.npz`` and a
preview grid; ``python -m facegen.synth videos [key=value ...]`` writes expression clips (PNG frames,
mp4, per-frame intensity and landmarks). The first word picks the mode; the rest are Hydra overrides of
``conf/synth.yaml``. Work happens in :mod:`facegen.data.synthetic`.
"""
from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import facegen.config  # noqa: F401  (registers the facegen_cache_dir resolver)
from facegen.config.cli import prepare
from facegen.data.synthetic import (
    make_render_settings,
    write_expression_videos,
    write_image_dataset,
)
from facegen.errors import FacegenError
from facegen.morphable import ProceduralFaceModel

CONF_DIR = Path(__file__).resolve().parent / "conf"
MODES = ("images", "videos")
USAGE = ("usage: python -m facegen.synth {images,videos} [key=value ...] [--key value ...] [--print_config] "
         "[--help]  (keys: conf/synth.yaml)")


def load_config(mode: str, overrides: list[str]) -> DictConfig:
    """``conf/synth.yaml`` with ``mode`` and the Hydra ``overrides`` applied."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("synth", overrides=[f"mode={mode}", *overrides])


def run(cfg: DictConfig) -> dict:
    """Generate the dataset ``cfg`` describes; returns the writer's summary dict."""
    model = ProceduralFaceModel(seed=cfg.model_seed)
    settings = make_render_settings(OmegaConf.to_container(cfg.render))
    ranges = OmegaConf.to_container(cfg.ranges)
    if cfg.mode == "images":
        return write_image_dataset(cfg.out, cfg.n, cfg.resolution, cfg.seed, model, ranges, cfg.expressions,
                                   tuple(cfg.strength), settings)
    expressions = OmegaConf.to_container(cfg.video_expressions) if cfg.video_expressions else None
    return write_expression_videos(cfg.out, cfg.n, cfg.resolution, cfg.frames, cfg.seed, expressions, model,
                                   ranges, settings, cfg.fps)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--help", "-h"):
        print(USAGE)
        raise SystemExit(0)
    if not argv or argv[0] not in MODES:
        raise SystemExit(USAGE)
    overrides = prepare("synth", argv[1:], prog=f"python -m facegen.synth {argv[0]}")
    try:
        summary = run(load_config(argv[0], overrides))
    except FacegenError as error:
        raise SystemExit(f"facegen.synth: {error}") from error
    rate = summary.get("images_per_second", summary.get("frames_per_second"))
    print(f"facegen.synth {argv[0]}: {summary['n']} written to {summary.get('zip', summary.get('folder'))} "
          f"in {summary['seconds']:.1f} s ({rate:.1f} images/s)")
    return summary


if __name__ == "__main__":
    main()
