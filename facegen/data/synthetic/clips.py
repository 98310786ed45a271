"""Synthetic expression clips with ground truth: the clip writer, its dataset and its datamodule.

:func:`write_expression_videos` renders clips of one identity going linearly from neutral to a named
expression at full strength over ``frames`` frames (pose and light fixed per clip): PNG frames, an mp4
(:func:`facegen.imaging.write_video`), and ``clip_XXXX.npz`` with the intensity per frame, landmarks and
parameters. :class:`SyntheticVideosDataModule` generates them into the cache when absent and yields clips.
"""
from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from facegen.data.loader import make_loader, starting_epoch
from facegen.data.synthetic.cache import build_once, cache_folder
from facegen.data.synthetic.render import (
    RenderSettings,
    face_renderer,
    make_ranges,
    make_render_settings,
    render_faces,
    sample_faces,
)
from facegen.errors import DatasetLayoutError
from facegen.imaging import encode_png, write_video
from facegen.morphable import ProceduralFaceModel
from facegen.morphable.params import ParamLayout, ParamRanges
from facegen.utils import atomic_write


def write_expression_videos(out: str | Path, n: int, resolution: int, frames: int = 16, seed: int = 0,
                            expressions: list[str] | None = None, model=None,
                            ranges: ParamRanges | Mapping | None = None, settings: RenderSettings | None = None,
                            fps: int = 8) -> dict:
    """Render ``n`` expression clips into ``out/``.

    Clip ``i`` shows a random identity (albedo, light, pose from ``ranges``; expression from the
    preset) going from neutral (intensity 0) to ``expressions[i % len(expressions)]`` at full strength
    (intensity 1), ``intensity_t = t / (frames - 1)``. Files per clip: ``clip_XXXX/NNNN.png``,
    ``clip_XXXX.mp4`` and ``clip_XXXX.npz`` (``intensity [T]``, ``landmarks [T, 68, 2]`` pixels,
    ``params [T, P]``, ``expression``); ``clips.json`` lists ``[{"clip", "expression"}]`` and is written last,
    so a folder holding it is complete. Every file is written atomically.

    Args:
        expressions: FaceScape names from the model's presets; default all but neutral.

    Returns:
        ``dict(folder, n, frames, seconds, frames_per_second)``.

    Raises:
        DatasetLayoutError: unknown expression names, or ``n``/``frames``/``resolution`` < 1 (frames < 2).
    """
    model = model or ProceduralFaceModel(seed=0)
    settings = settings or RenderSettings()
    presets = getattr(model, "expression_presets", {}) or {}
    expressions = list(expressions or [name for name in presets if name != "neutral"])
    unknown = [name for name in expressions if name not in presets]
    if unknown or not expressions:
        raise DatasetLayoutError(f"unknown video expressions {unknown}; expected names from {sorted(presets)}")
    if n <= 0 or frames < 2 or resolution <= 0:
        raise DatasetLayoutError(f"videos need n >= 1, frames >= 2, resolution >= 1; got {n}, {frames}, {resolution}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    layout = ParamLayout.from_model(model)
    base, _, _ = sample_faces(model, n, seed, make_ranges(ranges), "sparse")
    renderer = face_renderer(model, resolution, settings)
    intensity = torch.linspace(0.0, 1.0, frames)
    index = []
    for clip in range(n):
        name = expressions[clip % len(expressions)]
        params = base[clip:clip + 1].repeat(frames, 1)
        params[:, layout.expression] = intensity[:, None] * presets[name][None]
        images, landmarks = [], []
        for first in range(0, frames, settings.batch_size):
            im, lm = render_faces(renderer, params[first:first + settings.batch_size], settings.supersample)
            images.append(im)
            landmarks.append(lm)
        images, landmarks = np.concatenate(images), np.concatenate(landmarks)
        stem = f"clip_{clip:04d}"
        for t, image in enumerate(images):
            atomic_write(out / stem / f"{t:04d}.png", encode_png(image, compress_level=1))
        write_video(out / f"{stem}.mp4", images, fps=fps)
        buffer = io.BytesIO()
        np.savez(buffer, intensity=intensity.numpy(), landmarks=landmarks, params=params.numpy(),
                 expression=np.array(name), exp_names=np.array(model.exp_names))
        atomic_write(out / f"{stem}.npz", buffer.getvalue())
        index.append({"clip": stem, "expression": name})
    atomic_write(out / "clips.json", json.dumps({"frames": frames, "resolution": resolution, "clips": index}, indent=1))
    seconds = time.perf_counter() - start
    return {"folder": out, "n": n, "frames": frames, "seconds": seconds, "frames_per_second": n * frames / seconds}


class ExpressionClipDataset(Dataset):
    """Clips written by :func:`write_expression_videos`.

    Items: ``dict(frames [T, 3, H, W] float32 in [0, 1], intensity [T], landmarks [T, 68, 2] pixels,
    params [T, P], expression str, index int)``.

    Raises:
        DatasetLayoutError: ``root/clips.json`` missing.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index = self.root / "clips.json"
        if not index.exists():
            raise DatasetLayoutError(f"{index} not found; expected a folder written by write_expression_videos "
                                     "(clips.json, clip_XXXX/NNNN.png, clip_XXXX.npz)")
        meta = json.loads(index.read_text())
        self.frames, self.clips = meta["frames"], meta["clips"]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]["clip"]
        data = np.load(self.root / f"{clip}.npz")
        frames = np.stack([np.asarray(Image.open(self.root / clip / f"{t:04d}.png").convert("RGB"))
                           for t in range(self.frames)])
        return {"frames": torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0,
                "intensity": torch.from_numpy(data["intensity"]).float(),
                "landmarks": torch.from_numpy(data["landmarks"]).float(),
                "params": torch.from_numpy(data["params"]).float(),
                "expression": str(data["expression"]), "index": index}


class SyntheticVideosDataModule(LightningDataModule):
    """Synthetic expression clips (one identity, neutral -> expression), generated into the cache if absent.

    Batches: ``frames [B, T, 3, H, W]`` in [0, 1], ``intensity [B, T]``, ``landmarks [B, T, 68, 2]``,
    ``params [B, T, P]``, ``expression`` list of names, ``index [B]``. Clips are split (seeded) into
    train and val by ``val_fraction``.

    Args:
        cache_dir: folder for generated clips.
        n, resolution, frames, seed, expressions, ranges, fps: see :func:`write_expression_videos`.
        model_seed: seed of the :class:`ProceduralFaceModel`; render: :class:`RenderSettings` fields.
    """

    def __init__(self, cache_dir: str | Path, n: int = 40, resolution: int = 64, frames: int = 16, seed: int = 0,
                 model_seed: int = 0, expressions: list[str] | None = None, ranges: dict | None = None,
                 render: dict | None = None, fps: int = 8, batch_size: int = 4, num_workers: int = 0,
                 val_fraction: float = 0.1):
        super().__init__()
        self.generation = dict(n=int(n), resolution=int(resolution), frames=int(frames), seed=int(seed),
                               expressions=list(expressions) if expressions else None, ranges=make_ranges(ranges),
                               settings=make_render_settings(render), fps=int(fps))
        self.model_seed, self.batch_size, self.num_workers = int(model_seed), batch_size, num_workers
        self.seed, self.val_fraction = int(seed), val_fraction
        self.folder = cache_folder(cache_dir, "synthetic_videos", self.model_seed, self.generation)
        self.train_set: torch.utils.data.Subset | None = None
        self.val_set: torch.utils.data.Subset | None = None

    def prepare_data(self) -> None:
        """Generate the clips unless they are already in the cache."""
        build_once(self.folder, "clips.json", lambda: write_expression_videos(
            self.folder, model=ProceduralFaceModel(seed=self.model_seed), **self.generation))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.prepare_data()
        dataset = ExpressionClipDataset(self.folder)
        order = np.random.default_rng(self.seed).permutation(len(dataset))
        n_val = int(round(len(dataset) * self.val_fraction))
        self.val_set = torch.utils.data.Subset(dataset, sorted(order[:n_val].tolist()))
        self.train_set = torch.utils.data.Subset(dataset, sorted(order[n_val:].tolist()))

    def model_kwargs(self) -> dict:
        """``dict(img_resolution, img_channels, frames)``."""
        return {"img_resolution": self.generation["resolution"], "img_channels": 3, "frames": self.generation["frames"]}

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return make_loader(dataset, self.batch_size, shuffle, self.seed, self.num_workers, starting_epoch(self))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
