"""Logging of pictures, tables, meshes and videos that works with any logger.

Every call also writes a file into the run folder (``pictures/``, ``metrics/``), so a run keeps its
results with no logger at all; W&B and TensorBoard additionally receive the media. Only global rank 0
writes. Metric names follow ``train/...``, ``val/...``, ``test/...`` with units in the name where they
matter (``val/rec_error_mm``).
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image

from facegen.shapes import assert_shape
from facegen.utils import atomic_write


def _trainer(obj: Trainer | LightningModule) -> Trainer:
    return obj if isinstance(obj, Trainer) else obj.trainer


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_")


def run_dir(trainer_or_module: Trainer | LightningModule) -> Path:
    """The run folder (``trainer.default_root_dir``), where ``pictures/`` and ``metrics/`` live."""
    return Path(_trainer(trainer_or_module).default_root_dir)


def _step(trainer: Trainer, step: int | None) -> int:
    return trainer.global_step if step is None else int(step)


def log_images(
    trainer_or_module: Trainer | LightningModule,
    key: str,
    images: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    step: int | None = None,
) -> list[Path]:
    """Save ``images`` (each ``[H, W, 3]`` or ``[H, W]`` uint8) as PNG and send them to the loggers.

    Files: ``<run_dir>/pictures/<key>/<step>_<i>.png``. Returns the written paths (empty off rank 0).

    Raises:
        facegen.errors.ShapeError: an image is not ``[H, W, 3]`` or ``[H, W]``.
    """
    trainer = _trainer(trainer_or_module)
    if not trainer.is_global_zero:
        return []
    for i, image in enumerate(images):
        assert_shape(np.asarray(image), ["H", "W"] if np.ndim(image) == 2 else ["H", "W", 3], f"{key}: images[{i}]",
                     hint="uint8 RGB, or [H, W] grey")
    step = _step(trainer, step)
    out = run_dir(trainer) / "pictures" / _slug(key)
    paths = []
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
        path = out / f"{step:08d}_{i}.png"
        atomic_write(path, buffer.getvalue())
        paths.append(path)
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[np.asarray(im) for im in images], step=step,
                             caption=list(captions) if captions else None)
        elif isinstance(logger, TensorBoardLogger):
            for i, image in enumerate(images):
                fmt = "HWC" if np.ndim(image) == 3 else "HW"
                logger.experiment.add_image(f"{key}/{i}", np.asarray(image), step, dataformats=fmt)
    return paths


def write_table(rows: Sequence[dict[str, Any]], path_stem: Path) -> tuple[Path, Path]:
    """Write ``rows`` as ``<path_stem>.csv`` and a Markdown table ``<path_stem>.md``; returns both paths."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    csv_path, md_path = path_stem.with_suffix(".csv"), path_stem.with_suffix(".md")
    atomic_write(csv_path, text.getvalue())
    atomic_write(md_path, markdown_table(rows, columns))
    return csv_path, md_path


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render ``rows`` as a GitHub Markdown table; floats get 3 decimals."""
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))

    def cell(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return f"{value:.3f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def log_table(trainer_or_module: Trainer | LightningModule, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` to ``<run_dir>/metrics/<key>.csv`` and ``.md`` and send the table to W&B."""
    trainer = _trainer(trainer_or_module)
    if not trainer.is_global_zero or not rows:
        return
    write_table(rows, run_dir(trainer) / "metrics" / _slug(key))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(key=key, columns=columns, data=[[row.get(c) for c in columns] for row in rows])


def _log_wandb_media(trainer_or_module: Trainer | LightningModule, key: str, make_media) -> None:
    """Log ``make_media(wandb)`` under ``key`` to every W&B logger (rank 0 only)."""
    trainer = _trainer(trainer_or_module)
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb  # optional at run time: heavy, only with a W&B logger configured

            logger.experiment.log({key: make_media(wandb), "trainer/global_step": trainer.global_step})


def log_mesh(trainer_or_module: Trainer | LightningModule, key: str, obj_path: Path) -> None:
    """Send an ``.obj`` mesh file to W&B as ``wandb.Object3D`` (the file itself stays in the run folder)."""
    _log_wandb_media(trainer_or_module, key, lambda wandb: wandb.Object3D(str(obj_path)))


def log_video(trainer_or_module: Trainer | LightningModule, key: str, mp4_path: Path) -> None:
    """Send an ``.mp4``/``.gif`` written with imageio to W&B (``wandb.Video`` from a path needs no moviepy)."""
    _log_wandb_media(trainer_or_module, key, lambda wandb: wandb.Video(str(mp4_path)))
