"""FFHQ-align real faces: ``python -m facegen.align in=<photo | folder | video> out=<folder> resolution=256``.

Per image (or video frame, every ``stride``-th): dlib's detector finds the faces (:func:`facegen.faces.detect`),
the largest is kept (the log notes when there were several), its 68 landmarks (:func:`facegen.faces.landmarks_68`)
give the FFHQ crop (:func:`facegen.faces.align_ffhq`, the NVlabs ffhq-dataset recipe). An image without a face is
named in the log and skipped, or stops the run (``no_face=error``). Files (``conf/align.yaml``):
``<out>/aligned/<name>.png``, ``<out>/landmarks.json`` (:class:`facegen.data.keypoints.Keypoints` JSON: the
landmarks in the crops, ``image_size`` = the crop size), ``<out>/alignment.json``, ``<out>/grid.png``.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError

from facegen.config.cli import prepare
from facegen.config.run_folder import RunFolder, holds_nothing
from facegen.data.keypoints import Keypoints, default_regions
from facegen.errors import DatasetLayoutError, FacegenError
from facegen.faces import align_image, as_rgb, is_video, read_frames
from facegen.faces.models import NoFaceError
from facegen.imaging import IMAGE_EXTENSIONS, tile, write_png
from facegen.utils import atomic_write

log = logging.getLogger("facegen.align")


def list_inputs(path: str | Path) -> list[Path]:
    """``path`` itself when it is a file, else the images and videos directly inside the folder, sorted by name.

    Raises:
        DatasetLayoutError: the path does not exist, or the folder holds no image or video.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and (p.suffix.lower() in IMAGE_EXTENSIONS or is_video(p))
                   ) if path.is_dir() else []
    if not files:
        raise DatasetLayoutError(f"{path}: not an image, a video or a folder holding images or videos")
    return files


def _pictures(path: Path, stride: int, max_frames: int | None) -> Iterator[tuple[str, int | None, np.ndarray]]:
    """``(crop name stem, frame index or None, uint8 [H, W, 3])`` of an image or of a video's frames."""
    if is_video(path):
        for index, frame in read_frames(path, stride=stride, max_frames=max_frames):
            yield f"{path.stem}_f{index:05d}", index, frame
        return
    try:
        with Image.open(path) as image:
            picture = as_rgb(image)
    except (OSError, UnidentifiedImageError) as error:
        raise DatasetLayoutError(f"{path}: cannot be read as an image ({error})") from error
    yield path.stem, None, picture


def _unique(stem: str, taken: set[str], suffix: str) -> str:
    name = f"{stem}.png"
    if name in taken:
        name = f"{stem}_{suffix.lstrip('.')}.png"
    k = 1
    while name in taken:
        name, k = f"{stem}_{k}.png", k + 1
    taken.add(name)
    return name


def _grid(crops: list[np.ndarray], cols: int, cell: int | None) -> np.ndarray:
    if cell:
        crops = [np.asarray(Image.fromarray(c).resize((cell, cell), Image.LANCZOS)) if c.shape[0] != cell else c
                 for c in crops]
    return tile(np.stack(crops), cols)


def run(cfg: DictConfig) -> dict:
    """Align every input of ``cfg``; write the files of the module docstring; return a summary.

    Raises:
        DatasetLayoutError: no input, an unreadable image. NoFaceError: a face is missing and ``no_face=error``.
        FaceModelsMissing: dlib or the models package is not installed.
    """
    start = time.perf_counter()
    if cfg.no_face not in ("skip", "error"):
        raise FacegenError(f"no_face={cfg.no_face!r}: expected skip or error")
    out = Path(cfg.out)
    folder = out / "aligned"
    folder.mkdir(parents=True, exist_ok=True)
    resolution = int(cfg.resolution)
    points: dict[str, np.ndarray] = {}
    records: dict[str, dict] = {}
    crops: list[np.ndarray] = []
    skipped: list[str] = []
    taken: set[str] = set()
    for path in list_inputs(cfg["in"]):
        for stem, frame, picture in _pictures(path, int(cfg.stride), cfg.max_frames):
            where = f"{path}" if frame is None else f"{path} frame {frame}"
            aligned, face, count = align_image(picture, resolution, detector=cfg.detector, upsample=cfg.upsample,
                                               transform_size=cfg.transform_size, enable_padding=cfg.padding)
            if aligned is None:
                if cfg.no_face == "error":
                    raise NoFaceError(f"{where}: no face found (no_face=error; no_face=skip skips such images)")
                log.warning("%s: no face found, skipped", where)
                skipped.append(where)
                continue
            name = _unique(stem, taken, path.suffix)
            if count > 1:
                log.info("%s: %d faces found, aligned the largest (box %s)", where, count,
                         [round(float(v), 1) for v in face.box])
            write_png(folder / name, aligned.image)
            points[name] = aligned.landmarks
            crops.append(aligned.image)
            records[name] = {"source": str(path), "frame": frame, "faces_found": count,
                             "box": [round(float(v), 2) for v in face.box], "score": round(face.score, 4),
                             "photo_size": [int(picture.shape[1]), int(picture.shape[0])], "padded": aligned.padded,
                             "photo_landmarks": np.round(face.landmarks, 3).tolist(),
                             "transform": np.round(aligned.transform, 8).tolist()}
    if not points:
        raise NoFaceError(f"{cfg['in']}: no face found in any input ({len(skipped)} skipped)")
    keypoints = Keypoints(points, default_regions(68), 68, source=str(out / "landmarks.json"),
                          image_size=(resolution, resolution))
    keypoints.save_json(out / "landmarks.json")
    atomic_write(out / "alignment.json", json.dumps({"resolution": resolution, "detector": cfg.detector,
                                                     "crops": records, "skipped": skipped}, indent=1))
    write_png(out / "grid.png", _grid(crops[:int(cfg.grid_max)], int(cfg.grid_cols), cfg.grid_cell))
    seconds = time.perf_counter() - start
    log.info("%d aligned %dx%d crops in %s, landmarks.json and grid.png in %s (%d skipped without a face, %.1f s)",
             len(points), resolution, resolution, folder, out, len(skipped), seconds)
    return {"crops": sorted(points), "skipped": skipped, "seconds": seconds, "landmarks": str(out / "landmarks.json"),
            "grid": str(out / "grid.png")}


@hydra.main(config_path="conf", config_name="align", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        with RunFolder(cfg.out, trained=lambda: not holds_nothing(Path(cfg.out))):
            run(cfg)
    except FacegenError as error:
        raise SystemExit(f"facegen.align: {type(error).__name__}: {error}") from error


if __name__ == "__main__":
    sys.argv[1:] = prepare("align", sys.argv[1:])
    main()
