"""Synthetic face images with ground truth: the NVlabs zip writer, its datamodule and the ground-truth dataset.

:func:`write_image_dataset` renders random faces (:mod:`facegen.data.synthetic.render`) into an NVlabs
``dataset_tool.py`` zip (``00000/img00000000.png`` ... + ``dataset.json`` with ``{"labels": [[name, label],
...]}``), a ``params.npz`` with every ground-truth parameter and the 68 projected landmarks, and a preview
``grid.png``. With ``expressions="presets"`` each image shows one FaceScape expression
(``model.expression_presets``) at a random strength and its label is that expression's index in
:data:`facegen.morphable.FACESCAPE_EXPRESSIONS`. :class:`SyntheticFacesDataModule` (the embedded default
image data) generates the zip into its cache folder when absent and is then an
:class:`facegen.data.images.ImageDataModule`.
"""
from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from facegen.data.images import ImageDataModule
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
from facegen.imaging import encode_png, tile
from facegen.morphable import FACESCAPE_EXPRESSIONS, ProceduralFaceModel
from facegen.morphable.params import ParamLayout, ParamRanges
from facegen.utils import atomic_file, atomic_write

log = logging.getLogger(__name__)


def image_grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """Tile ``images [N, H, W, 3]`` uint8 into a grid ``[rows*H, columns*W, 3]`` (blank cells black;
    :func:`facegen.imaging.tile`)."""
    return tile(images, columns)


def write_image_dataset(out: str | Path, n: int, resolution: int, seed: int = 0, model=None,
                        ranges: ParamRanges | Mapping | None = None, expressions: str = "presets",
                        strength: tuple[float, float] = (0.3, 1.0), settings: RenderSettings | None = None,
                        grid_size: int = 64) -> dict:
    """Render ``n`` random faces into ``out/``: ``faces.zip`` (NVlabs), ``params.npz``, ``grid.png``.

    Args:
        out: output folder (created).
        n: number of images; resolution: 64, 128, 256 or any positive size in pixels.
        seed: seeds the parameters (same seed, same dataset).
        model: morphable model; default :class:`ProceduralFaceModel` ``(seed=0)``.
        ranges, expressions, strength: see :func:`~facegen.data.synthetic.render.sample_faces`.
        settings: :class:`RenderSettings`.
        grid_size: images in the preview grid.

    ``params.npz`` holds ``params [n, P]``, ``landmarks [n, 68, 2]`` (pixels), ``labels [n]``,
    ``strength [n]``, ``names [n]`` (zip members), ``exp_names``, ``label_names`` and the layout sizes.
    Every file is written under a unique temporary name and renamed; ``faces.zip`` comes last, so a folder
    holding it is complete.

    Returns:
        ``dict(zip, params, grid, n, seconds, images_per_second)``.

    Raises:
        DatasetLayoutError: ``n`` or ``resolution`` not positive, or a bad ``expressions`` mode.
    """
    if n <= 0 or resolution <= 0:
        raise DatasetLayoutError(f"synthetic images need n > 0 and resolution > 0, got n={n}, resolution={resolution}")
    settings = settings or RenderSettings()
    model = model or ProceduralFaceModel(seed=0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    params, labels, strengths = sample_faces(model, n, seed, make_ranges(ranges), expressions, strength)
    renderer = face_renderer(model, resolution, settings)
    names = [f"{i // 1000:05d}/img{i:08d}.png" for i in range(n)]
    landmarks = np.zeros((n, 68, 2), np.float32)
    preview = []
    with atomic_file(out / "faces.zip") as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for first in range(0, n, settings.batch_size):
                images, marks = render_faces(renderer, params[first:first + settings.batch_size],
                                             settings.supersample)
                landmarks[first:first + len(images)] = marks
                for offset, image in enumerate(images):
                    archive.writestr(names[first + offset], encode_png(image, compress_level=1))
                preview.extend(images[:max(0, grid_size - len(preview))])
            json_labels = ([[name, int(label)] for name, label in zip(names, labels)]
                           if expressions == "presets" else None)
            archive.writestr("dataset.json", json.dumps({"labels": json_labels}))
        layout = ParamLayout.from_model(model)
        buffer = io.BytesIO()
        np.savez(buffer, params=params.numpy(), landmarks=landmarks, labels=labels, strength=strengths,
                 names=np.array(names), exp_names=np.array(model.exp_names),
                 label_names=np.array(FACESCAPE_EXPRESSIONS), n_id=layout.n_id, n_exp=layout.n_exp,
                 n_alb=layout.n_alb, resolution=resolution, seed=seed)
        atomic_write(out / "params.npz", buffer.getvalue())
        atomic_write(out / "grid.png", encode_png(image_grid(np.stack(preview)), compress_level=1))
    seconds = time.perf_counter() - start
    log.info("wrote %d synthetic faces (%d px) to %s in %.1f s", n, resolution, out, seconds)
    return {"zip": out / "faces.zip", "params": out / "params.npz", "grid": out / "grid.png", "n": n,
            "seconds": seconds, "images_per_second": n / seconds}


def load_ground_truth(folder: str | Path) -> dict:
    """The ``params.npz`` written by :func:`write_image_dataset` in ``folder``, as a dict.

    Returns ``dict(params [N, P] float32 tensor, landmarks [N, 68, 2] float32 tensor (pixels at
    ``resolution``), index {zip member name: row}, n_id, n_exp, n_alb, resolution, exp_names)``.

    Raises:
        DatasetLayoutError: ``folder/params.npz`` missing or without the documented keys.
    """
    path = Path(folder) / "params.npz"
    if not path.exists():
        raise DatasetLayoutError(f"{path} not found; expected a folder written by write_image_dataset "
                                 "(faces.zip, params.npz)")
    with np.load(path) as data:
        missing = {"params", "landmarks", "names", "n_id", "n_exp", "n_alb", "resolution"} - set(data.files)
        if missing:
            raise DatasetLayoutError(f"{path} lacks keys {sorted(missing)}; expected the write_image_dataset layout")
        names = [str(n) for n in data["names"]]
        return {"params": torch.from_numpy(data["params"]).float(),
                "landmarks": torch.from_numpy(data["landmarks"]).float(),
                "index": {name: i for i, name in enumerate(names)}, "names": names,
                "n_id": int(data["n_id"]), "n_exp": int(data["n_exp"]), "n_alb": int(data["n_alb"]),
                "resolution": int(data["resolution"]),
                "exp_names": [str(n) for n in data["exp_names"]] if "exp_names" in data.files else []}


class FaceParamsDataset(Dataset):
    """An :class:`facegen.data.images.ImageDataset` of synthetic faces plus their ground truth.

    Items: the image item (``image [3, H, W]`` in [-1, 1], ``c``, ``label``) plus ``params [P]`` (the
    :mod:`facegen.morphable.params` vector) and ``landmarks [68, 2]`` in pixels of the returned image
    (rescaled from the stored resolution, pixel centres at integers: ``u' = (u + 0.5) s - 0.5``).

    Raises:
        DatasetLayoutError: an image of the base dataset has no row in the ground-truth table.
    """

    def __init__(self, base, table: dict, resolution: int):
        self.base, self.table = base, table
        self.scale = float(resolution) / float(table["resolution"])
        self.rows = []
        for record in base.records:
            if record.name not in table["index"]:
                raise DatasetLayoutError(f"{base.source.root}: image {record.name} has no row in params.npz")
            self.rows.append(table["index"][record.name])
        self.rows = torch.tensor(self.rows, dtype=torch.long)

    @property
    def records(self):
        return self.base.records

    def __len__(self) -> int:
        return len(self.base)

    def _landmarks(self, rows: torch.Tensor) -> torch.Tensor:
        return (self.table["landmarks"][rows] + 0.5) * self.scale - 0.5

    def targets(self) -> torch.Tensor:
        """``[N, P + 136]``: params then flattened landmarks (pixels) of every item."""
        return torch.cat([self.table["params"][self.rows], self._landmarks(self.rows).flatten(1)], dim=1)

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        row = self.rows[index]
        return {**item, "params": self.table["params"][row], "landmarks": self._landmarks(row)}


class SyntheticFacesDataModule(ImageDataModule):
    """Synthetic face images (the embedded default data of the image models).

    ``prepare_data`` renders ``n`` faces with :func:`write_image_dataset` into
    ``cache_dir/synthetic_faces/<sha1 of the settings>/faces.zip`` unless that file exists (two processes
    starting on a fresh cache take turns: the second reads the first one's files); after that this is
    an :class:`ImageDataModule` on the zip (images ``[3, H, W]`` in [-1, 1]; with ``use_labels`` the
    class is the FaceScape expression, ``c_dim`` = number of classes present).

    Args:
        cache_dir: folder for generated datasets.
        n, resolution, seed, expressions, strength, ranges: see :func:`write_image_dataset`.
        model_seed: seed of the :class:`ProceduralFaceModel`.
        render: :class:`RenderSettings` fields as a dict.
        xflip, batch_size, num_workers, use_labels, val_fraction: as :class:`ImageDataModule`.
        ground_truth: items also carry ``params [P]`` and ``landmarks [68, 2]`` (pixels) from ``params.npz``
            (:class:`FaceParamsDataset`; for the face regressor); off by default, and not part of the cache key.
    """

    def __init__(self, cache_dir: str | Path, n: int = 2000, resolution: int = 64, seed: int = 0,
                 model_seed: int = 0, expressions: str = "presets", strength: tuple[float, float] = (0.3, 1.0),
                 ranges: dict | None = None, render: dict | None = None, xflip: bool = False, batch_size: int = 8,
                 num_workers: int = 0, use_labels: bool = False, val_fraction: float = 0.0,
                 ground_truth: bool = False):
        if ground_truth and xflip:
            raise DatasetLayoutError("synthetic faces: ground_truth=True needs xflip=False (mirrored images would "
                                     "need mirrored landmarks and left/right expression controls)")
        self.ground_truth = bool(ground_truth)   # not part of the cache key: the same files either way
        self.generation = dict(n=int(n), resolution=int(resolution), seed=int(seed), expressions=expressions,
                               strength=tuple(strength), ranges=make_ranges(ranges),
                               settings=make_render_settings(render))
        self.model_seed = int(model_seed)
        self.folder = cache_folder(cache_dir, "synthetic_faces", self.model_seed, self.generation)
        super().__init__(self.folder / "faces.zip", resolution, channels=3, xflip=xflip, batch_size=batch_size,
                         num_workers=num_workers, seed=seed, use_labels=use_labels, val_fraction=val_fraction)

    def _write(self) -> None:
        info = write_image_dataset(self.folder, model=ProceduralFaceModel(seed=self.model_seed), **self.generation)
        log.info("synthetic faces: %.1f images/s", info["images_per_second"])

    def prepare_data(self) -> None:
        """Generate the dataset zip unless it is already in the cache."""
        build_once(self.folder, "faces.zip", self._write)

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()
        wrapped = isinstance(self.train_set, FaceParamsDataset)
        super().setup(stage)
        if self.ground_truth and not wrapped:
            table = load_ground_truth(self.folder)
            self.train_set = FaceParamsDataset(self.train_set, table, self.resolution)
            self.val_set = FaceParamsDataset(self.val_set, table, self.resolution)

    def model_kwargs(self) -> dict:
        """``ImageDataModule.model_kwargs()``; with ``ground_truth`` also ``n_id, n_exp, n_alb`` and
        ``target_mean``/``target_std`` ``[P + 136]`` of (params, landmarks) over the train split."""
        kwargs = super().model_kwargs()
        if not self.ground_truth:
            return kwargs
        targets = self.train_set.targets()
        return {**kwargs, "n_id": self.train_set.table["n_id"], "n_exp": self.train_set.table["n_exp"],
                "n_alb": self.train_set.table["n_alb"], "exp_names": self.train_set.table["exp_names"],
                "target_mean": targets.mean(0), "target_std": targets.std(0)}
