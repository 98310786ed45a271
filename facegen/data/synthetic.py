"""Synthetic face images and expression videos with ground truth, rendered from a morphable model.

Images (:func:`write_image_dataset`): random identity, expression, albedo, SH illumination and pose
(:class:`facegen.morphable.params.ParamRanges`) rendered by :class:`facegen.render.FaceRenderer`, written
as an NVlabs ``dataset_tool.py`` zip (``00000/img00000000.png`` ... + ``dataset.json`` with
``{"labels": [[name, label], ...]}``), a ``params.npz`` with every ground-truth parameter and the 68
projected landmarks, and a preview ``grid.png``. With ``expressions="presets"`` each image shows one
FaceScape expression (``model.expression_presets``) at a random strength and its label is that
expression's index in :data:`facegen.morphable.FACESCAPE_EXPRESSIONS`.

Videos (:func:`write_expression_videos`): clips of one identity going linearly from neutral to a named
expression at full strength over ``frames`` frames (pose and light fixed per clip): PNG frames, an mp4
(imageio-ffmpeg), and ``clip_XXXX.npz`` with the intensity per frame, landmarks and parameters.

Datamodules: :class:`SyntheticFacesDataModule` (the embedded default image data) generates the zip into
its cache folder when absent and is then an :class:`facegen.data.images.ImageDataModule`;
:class:`SyntheticVideosDataModule` yields clips.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from facegen.data.images import ImageDataModule
from facegen.errors import DatasetLayoutError
from facegen.morphable import FACESCAPE_EXPRESSIONS, ProceduralFaceModel
from facegen.morphable.params import ParamLayout, ParamRanges, sample_params
from facegen.render import FaceRenderer, PerspectiveCamera
from facegen.utils import atomic_write

log = logging.getLogger(__name__)


@dataclass
class RenderSettings:
    """How faces are pictured: camera framing, anti-aliasing and background.

    ``fov_degrees``/``margin``: a perspective camera framing the model's mean face (margin > 1 leaves
    room for pose and translation); ``supersample``: render at ``supersample x`` the size and average
    down; ``background``: RGB in [0, 1]; ``batch_size``: faces rendered at once.
    """

    fov_degrees: float = 12.0
    margin: float = 1.25
    supersample: int = 2
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    batch_size: int = 32


def _dataclass_from(cls, values, label: str):
    """``cls(**values)`` from a (Hydra) mapping, sequences turned into tuples; None -> defaults.

    Raises:
        DatasetLayoutError: an unknown key (names ``label`` and the known keys).
    """
    if values is None or isinstance(values, cls):
        return values or cls()
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise DatasetLayoutError(f"unknown {label} keys {sorted(unknown)}; expected some of {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
                  for k, v in dict(values).items()})


def make_ranges(ranges: Mapping | ParamRanges | None) -> ParamRanges:
    """A :class:`ParamRanges` from a (Hydra) dict of its fields (None = defaults)."""
    return _dataclass_from(ParamRanges, ranges, "synthetic ranges")


def make_render_settings(render: Mapping | RenderSettings | None) -> RenderSettings:
    """A :class:`RenderSettings` from a (Hydra) dict of its fields (None = defaults)."""
    return _dataclass_from(RenderSettings, render, "synthetic render")


def face_renderer(model, resolution: int, settings: RenderSettings) -> FaceRenderer:
    """The :class:`FaceRenderer` used for synthetic data: ``resolution * supersample`` pixels."""
    camera = PerspectiveCamera.framing(model.mean_shape, fov_degrees=settings.fov_degrees, margin=settings.margin)
    return FaceRenderer(model, resolution * settings.supersample, camera, tuple(settings.background))


@torch.no_grad()
def render_faces(renderer: FaceRenderer, params: torch.Tensor, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Render ``params [N, P]`` -> (images uint8 ``[N, H, W, 3]``, landmarks float32 ``[N, 68, 2]`` pixels).

    ``H = renderer size / supersample``; landmarks are in the output image's pixel convention
    (centres at integers): ``u = (u_big + 0.5) / supersample - 0.5``.
    """
    out = renderer(params)
    image = torch.nn.functional.avg_pool2d(out.image, supersample) if supersample > 1 else out.image
    images = (image.permute(0, 2, 3, 1) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
    landmarks = ((out.landmarks + 0.5) / supersample - 0.5).float().cpu().numpy()
    return images, landmarks


def sample_faces(model, n: int, seed: int, ranges: ParamRanges, expressions: str = "presets",
                 strength: tuple[float, float] = (0.3, 1.0)) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Random parameter vectors with their expression label and strength.

    Args:
        model: the morphable model (``expression_presets`` needed for ``expressions="presets"``).
        n: number of faces.
        seed: seeds a ``torch.Generator``; the same seed gives the same faces.
        ranges: identity/albedo/light/pose ranges (and the expression ranges for ``"sparse"``).
        expressions: ``"presets"``: one FaceScape expression per face (uniform over the model's presets,
            neutral included) times a strength uniform in ``strength``; ``"sparse"``: ``ranges``' sparse
            random activations (label -1, strength NaN).

    Returns:
        ``(params [n, P] float32, labels [n] int64, strengths [n] float32)``.

    Raises:
        DatasetLayoutError: unknown ``expressions`` mode or a model without presets.
    """
    generator = torch.Generator().manual_seed(int(seed))
    params = sample_params(ParamLayout.from_model(model), n, generator, ranges)
    if expressions == "sparse":
        return params, np.full(n, -1, np.int64), np.full(n, np.nan, np.float32)
    presets = getattr(model, "expression_presets", None)
    if expressions != "presets" or not presets:
        raise DatasetLayoutError(f"synthetic expressions={expressions!r} needs 'presets' (a model with "
                                 f"expression_presets) or 'sparse'")
    names = [name for name in FACESCAPE_EXPRESSIONS if name in presets]
    table = torch.stack([presets[name] for name in names])                     # [E, K_exp]
    choice = torch.randint(len(names), (n,), generator=generator)
    amount = strength[0] + (strength[1] - strength[0]) * torch.rand(n, generator=generator)
    params[:, ParamLayout.from_model(model).expression] = table[choice] * amount[:, None]
    labels = np.array([FACESCAPE_EXPRESSIONS.index(names[i]) for i in choice.tolist()], np.int64)
    return params, labels, amount.numpy().astype(np.float32)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def image_grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """Tile ``images [N, H, W, 3]`` uint8 into a grid ``[rows*H, columns*W, 3]`` (blank cells black)."""
    n, h, w, c = images.shape
    columns = min(columns, n)
    rows = -(-n // columns)
    grid = np.zeros((rows * h, columns * w, c), np.uint8)
    for i, image in enumerate(images):
        r, q = divmod(i, columns)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = image
    return grid


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
        ranges, expressions, strength: see :func:`sample_faces`.
        settings: :class:`RenderSettings`.
        grid_size: images in the preview grid.

    ``params.npz`` holds ``params [n, P]``, ``landmarks [n, 68, 2]`` (pixels), ``labels [n]``,
    ``strength [n]``, ``names [n]`` (zip members), ``exp_names``, ``label_names`` and the layout sizes.

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
    tmp = out / ".faces.zip.tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for first in range(0, n, settings.batch_size):
            images, marks = render_faces(renderer, params[first:first + settings.batch_size], settings.supersample)
            landmarks[first:first + len(images)] = marks
            for offset, image in enumerate(images):
                archive.writestr(names[first + offset], _png(image))
            preview.extend(images[:max(0, grid_size - len(preview))])
        json_labels = [[name, int(label)] for name, label in zip(names, labels)] if expressions == "presets" else None
        archive.writestr("dataset.json", json.dumps({"labels": json_labels}))
    tmp.replace(out / "faces.zip")
    layout = ParamLayout.from_model(model)
    buffer = io.BytesIO()
    np.savez(buffer, params=params.numpy(), landmarks=landmarks, labels=labels, strength=strengths,
             names=np.array(names), exp_names=np.array(model.exp_names), label_names=np.array(FACESCAPE_EXPRESSIONS),
             n_id=layout.n_id, n_exp=layout.n_exp, n_alb=layout.n_alb, resolution=resolution, seed=seed)
    atomic_write(out / "params.npz", buffer.getvalue())
    atomic_write(out / "grid.png", _png(image_grid(np.stack(preview))))
    seconds = time.perf_counter() - start
    log.info("wrote %d synthetic faces (%d px) to %s in %.1f s", n, resolution, out, seconds)
    return {"zip": out / "faces.zip", "params": out / "params.npz", "grid": out / "grid.png", "n": n,
            "seconds": seconds, "images_per_second": n / seconds}


def write_expression_videos(out: str | Path, n: int, resolution: int, frames: int = 16, seed: int = 0,
                            expressions: list[str] | None = None, model=None,
                            ranges: ParamRanges | Mapping | None = None, settings: RenderSettings | None = None,
                            fps: int = 8) -> dict:
    """Render ``n`` expression clips into ``out/``.

    Clip ``i`` shows a random identity (albedo, light, pose from ``ranges``; expression from the
    preset) going from neutral (intensity 0) to ``expressions[i % len(expressions)]`` at full strength
    (intensity 1), ``intensity_t = t / (frames - 1)``. Files per clip: ``clip_XXXX/NNNN.png``,
    ``clip_XXXX.mp4`` and ``clip_XXXX.npz`` (``intensity [T]``, ``landmarks [T, 68, 2]`` pixels,
    ``params [T, P]``, ``expression``); ``clips.json`` lists ``[{"clip", "expression"}]``.

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
        (out / stem).mkdir(exist_ok=True)
        for t, image in enumerate(images):
            atomic_write(out / stem / f"{t:04d}.png", _png(image))
        imageio.mimwrite(out / f"{stem}.mp4", list(images), fps=fps, macro_block_size=1)
        buffer = io.BytesIO()
        np.savez(buffer, intensity=intensity.numpy(), landmarks=landmarks, params=params.numpy(),
                 expression=np.array(name), exp_names=np.array(model.exp_names))
        atomic_write(out / f"{stem}.npz", buffer.getvalue())
        index.append({"clip": stem, "expression": name})
    atomic_write(out / "clips.json", json.dumps({"frames": frames, "resolution": resolution, "clips": index}, indent=1))
    seconds = time.perf_counter() - start
    return {"folder": out, "n": n, "frames": frames, "seconds": seconds, "frames_per_second": n * frames / seconds}


def _cache_folder(cache_dir: str | Path, kind: str, model_seed: int, generation: dict) -> Path:
    """``cache_dir/<kind>/<sha1 of the generation settings>``: one folder per distinct dataset."""
    settings = {k: asdict(v) if hasattr(v, "__dataclass_fields__") else v for k, v in generation.items()}
    text = json.dumps({"model_seed": model_seed, **settings}, sort_keys=True, default=str)
    return Path(cache_dir).expanduser() / kind / hashlib.sha1(text.encode()).hexdigest()[:16]


class SyntheticFacesDataModule(ImageDataModule):
    """Synthetic face images (the embedded default data of the image models).

    ``prepare_data`` renders ``n`` faces with :func:`write_image_dataset` into
    ``cache_dir/synthetic_faces/<sha1 of the settings>/faces.zip`` unless that file exists; after that this is
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
        self.folder = _cache_folder(cache_dir, "synthetic_faces", self.model_seed, self.generation)
        super().__init__(self.folder / "faces.zip", resolution, channels=3, xflip=xflip, batch_size=batch_size,
                         num_workers=num_workers, seed=seed, use_labels=use_labels, val_fraction=val_fraction)

    def prepare_data(self) -> None:
        """Generate the dataset zip unless it is already in the cache."""
        if (self.folder / "faces.zip").exists():
            return
        info = write_image_dataset(self.folder, model=ProceduralFaceModel(seed=self.model_seed), **self.generation)
        log.info("synthetic faces: %.1f images/s", info["images_per_second"])

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
        self.folder = _cache_folder(cache_dir, "synthetic_videos", self.model_seed, self.generation)
        self.train_set: torch.utils.data.Subset | None = None
        self.val_set: torch.utils.data.Subset | None = None

    def prepare_data(self) -> None:
        """Generate the clips unless they are already in the cache."""
        if not (self.folder / "clips.json").exists():
            write_expression_videos(self.folder, model=ProceduralFaceModel(seed=self.model_seed), **self.generation)

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
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          generator=torch.Generator().manual_seed(self.seed) if shuffle else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
