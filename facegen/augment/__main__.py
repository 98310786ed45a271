"""Entry point: ``python -m facegen.augment root=<images> out=<folder> [key=value ...] [--key value ...]``
(``conf/augment.yaml``; ``--help``, ``--print_config``: :mod:`facegen.config.cli`).

Runs :func:`facegen.augment.motion_transfer.augment_dataset`. With ``root=null`` (the default) a few
synthetic faces are rendered first (:func:`facegen.data.synthetic.write_image_dataset`), so the command
runs on CPU in seconds with no data.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import facegen.config  # noqa: F401  (registers the facegen_cache_dir resolver)
from facegen.augment.motion_transfer import AugmentResult, augment_dataset
from facegen.config.cli import prepare
from facegen.data.keypoints import (
    DEFAULT_TEMPLATE_BOX,
    YALE_TEMPLATE_BOX,
    Keypoints,
    default_regions,
)
from facegen.data.synthetic import write_image_dataset
from facegen.errors import FacegenError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
BOXES = {"default": DEFAULT_TEMPLATE_BOX, "ffhq": DEFAULT_TEMPLATE_BOX, "yale": YALE_TEMPLATE_BOX}


def load_config(overrides: list[str]) -> DictConfig:
    """``conf/augment.yaml`` with the Hydra ``overrides`` applied."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("augment", overrides=overrides)


def run(cfg: DictConfig) -> AugmentResult:
    """Augment the dataset ``cfg`` describes."""
    box = cfg.template_box
    if isinstance(box, str):
        if box not in BOXES:
            raise FacegenError(f"template_box={box!r}; expected one of {sorted(BOXES)} or [left, top, right, bottom]")
        box = BOXES[box]
    else:
        box = tuple(float(v) for v in OmegaConf.to_container(box))
    root = cfg.root
    if root is None:
        written = write_image_dataset(Path(cfg.out) / "synthetic_stills", cfg.synthetic_n, cfg.resolution, cfg.seed,
                                      grid_size=8)
        root = written["zip"]
        params = np.load(written["params"])  # ground-truth 68 landmarks of the rendered faces, at `resolution`
        truth = Keypoints({str(n): lm for n, lm in zip(params["names"], params["landmarks"])}, default_regions(68), 68)
        landmarks = truth.save_json(Path(cfg.out) / "synthetic_stills" / "landmarks.json")
        cfg = OmegaConf.merge(cfg, {"landmarks": str(landmarks), "landmarks_space": "resized"})
    expressions = OmegaConf.to_container(cfg.expressions) if cfg.expressions else None
    return augment_dataset(root, cfg.out, resolution=cfg.resolution, channels=cfg.channels,
                           frames_per_still=cfg.frames_per_still, landmarks=cfg.landmarks, driving=cfg.driving,
                           expressions=expressions, seed=cfg.seed, template_box=box,
                           landmarks_space=cfg.landmarks_space, missing=cfg.missing,
                           driving_frames=cfg.driving_frames, driving_stride=cfg.driving_stride, gain=cfg.gain,
                           min_separation=cfg.min_separation,
                           batch_size=cfg.batch_size)


def main(argv: list[str] | None = None) -> AugmentResult:
    argv = prepare("augment", sys.argv[1:] if argv is None else argv, prog="python -m facegen.augment")
    try:
        result = run(load_config(argv))
    except FacegenError as error:
        raise SystemExit(f"facegen.augment: {error}") from error
    print(f"facegen.augment: {result.n_stills} stills -> {result.n_images} images in {result.zip_path} "
          f"({result.seconds:.1f} s, {result.seconds_per_still:.3f} s per still); preview {result.preview_path}")
    return result


if __name__ == "__main__":
    main()
