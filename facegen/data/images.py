"""Image datasets for GANs: a folder tree of images or an NVlabs dataset zip, as a LightningDataModule.

Layouts (``root``):
- a folder of images (png, jpg, pgm, gif, bmp, webp, tiff; files without a known extension are sniffed
  with PIL, e.g. Yale's ``subject01.happy``), optionally one sub-folder per class (identity): with
  ``use_labels=True`` the first-level sub-folder names are the classes, in sorted order;
- an NVlabs ``dataset_tool.py`` zip (or folder) with ``dataset.json`` = ``{"labels": [[name, label], ...]}``
  where a label is a class index (one-hot encoded) or a list of floats.

Each image is converted to L or RGB, centre-cropped to a square, resized to ``resolution`` (Lanczos)
and returned as float32 ``[C, H, W]`` in [-1, 1] (NVlabs ``img / 127.5 - 1``). Unreadable and truncated files
(a JPEG without its end marker, a PNG without IEND) are reported with a warning naming the file and left out at
the scan; a file that passes the scan but does not decode stops the run naming it (never another image in its
place).
"""
from __future__ import annotations

import io
import json
import logging
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from facegen.data.loader import make_loader, starting_epoch
from facegen.errors import DatasetLayoutError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pbm", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
NON_IMAGE_EXTENSIONS = {".json", ".txt", ".md", ".csv", ".npy", ".npz", ".py", ".yaml", ".yml", ".pkl", ".zip"}
LAYOUT = ("a folder of images (png/jpg/pgm/gif; with use_labels, one sub-folder per class) or an NVlabs "
          "dataset .zip with dataset.json")


@dataclass(frozen=True)
class ImageRecord:
    """One image: ``name`` (path relative to the root or zip member) and its class index (-1 = none)."""

    name: str
    label: int = -1


class ImageSource:
    """Reads raw image bytes from a folder or a zip, by relative name."""

    def __init__(self, root: Path):
        self.root = root
        self.is_zip = root.is_file() and zipfile.is_zipfile(root)
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1

    def names(self) -> list[str]:
        """All file names under the root (sorted, ``/``-separated, relative)."""
        if self.is_zip:
            with zipfile.ZipFile(self.root) as z:
                return sorted(n for n in z.namelist() if not n.endswith("/"))
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def read(self, name: str) -> bytes:
        if self.is_zip:
            # one handle per process, opened lazily: a handle inherited through fork (a dataloader worker, a
            # ddp_fork rank) shares its file offset with the parent, and concurrent reads would interleave seeks
            if self._zip is None or self._zip_pid != os.getpid():
                self._zip, self._zip_pid = zipfile.ZipFile(self.root), os.getpid()
            return self._zip.read(name)
        return (self.root / name).read_bytes()

    def __getstate__(self) -> dict:
        return {"root": self.root, "is_zip": self.is_zip, "_zip": None, "_zip_pid": -1}


def decode_image(data: bytes, resolution: int, channels: int) -> np.ndarray:
    """Image bytes -> uint8 ``[resolution, resolution, channels]``: L/RGB, centre crop to square, Lanczos resize."""
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("L" if channels == 1 else "RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != resolution:
        image = image.resize((resolution, resolution), Image.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _is_truncated(data: bytes) -> bool:
    """A JPEG without its end-of-image marker or a PNG without its IEND chunk: cut off (PIL's ``verify`` passes
    both, and a decoder that tolerates them would serve a half-grey picture)."""
    if data[:2] == b"\xff\xd8":
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-16:]
    return False


def _is_image(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        return not _is_truncated(data)
    except Exception:  # PIL raises many types for non-images
        return False


class ImageDataset(Dataset):
    """Images of an :class:`ImageSource` as ``dict(image=[C, H, W] float32 in [-1, 1], c=[c_dim] float32,
    label=int64)``; with ``xflip`` the dataset is doubled by mirrored copies (NVlabs ``--mirror``)."""

    def __init__(self, source: ImageSource, records: list[ImageRecord], resolution: int, channels: int,
                 c_dim: int, label_vectors: dict[str, np.ndarray] | None = None, xflip: bool = False):
        self.source, self.records, self.resolution, self.channels = source, records, resolution, channels
        self.c_dim, self.label_vectors, self.xflip = c_dim, label_vectors or {}, xflip

    def __len__(self) -> int:
        return len(self.records) * (2 if self.xflip else 1)

    def load(self, index: int) -> np.ndarray:
        """uint8 ``[H, W, C]`` of record ``index``.

        Raises:
            DatasetLayoutError: the file passed the scan but does not decode (corrupt inside): the run stops naming
                it rather than serving another image in its place.
        """
        record = self.records[index]
        try:
            return decode_image(self.source.read(record.name), self.resolution, self.channels)
        except Exception as error:  # corrupt data surfaces as OSError, SyntaxError, ValueError ...
            raise DatasetLayoutError(f"{self.source.root}/{record.name}: cannot be decoded ({error}); remove or "
                                     "replace the file (a resumed run continues from its last checkpoint)") from error

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self.records)
        record = self.records[index % n]
        image = torch.from_numpy(self.load(index % n).copy()).permute(2, 0, 1).float() / 127.5 - 1
        if index >= n:
            image = image.flip(-1)
        if record.name in self.label_vectors:
            c = torch.from_numpy(self.label_vectors[record.name]).float()
        elif self.c_dim > 0:
            c = torch.nn.functional.one_hot(torch.tensor(record.label), self.c_dim).float()
        else:
            c = torch.zeros(0)
        return {"image": image, "c": c, "label": torch.tensor(record.label, dtype=torch.int64)}


class ImageDataModule(LightningDataModule):
    """Images for GAN training (see the module docstring for layouts).

    Args:
        root: folder or NVlabs dataset zip.
        resolution: output size in pixels (square); channels: 1 (L) or 3 (RGB).
        xflip: add mirrored copies; batch_size, num_workers, seed: loader settings (seeded shuffling/split).
        use_labels: class labels (``c`` one-hot, ``c_dim`` = number of classes) from sub-folders or dataset.json.
        val_fraction: fraction of images held out (seeded) as the validation/test split.
    Raises:
        DatasetLayoutError: at ``setup`` when ``root`` is missing, holds no readable image, or labels are
        asked for but the layout has none.
    """

    def __init__(self, root: str | Path, resolution: int, channels: int = 3, xflip: bool = False, batch_size: int = 8,
                 num_workers: int = 0, seed: int = 0, use_labels: bool = False, val_fraction: float = 0.0):
        super().__init__()
        if channels not in (1, 3):
            raise DatasetLayoutError(f"channels must be 1 or 3 for images in {root}, got {channels}")
        self.root, self.resolution, self.channels = Path(root).expanduser(), int(resolution), int(channels)
        self.xflip, self.batch_size, self.num_workers, self.seed = xflip, batch_size, num_workers, seed
        self.use_labels, self.val_fraction = use_labels, val_fraction
        self.label_names: list[str] = []
        self.c_dim = 0
        self.train_set: ImageDataset | None = None
        self.val_set: ImageDataset | None = None

    def _scan(self, source: ImageSource) -> tuple[list[ImageRecord], dict[str, np.ndarray]]:
        """Readable images with their labels; warns about unreadable files that look like images."""
        names = source.names()
        meta = next((n for n in names if Path(n).name == "dataset.json"), None)
        labels_json = json.loads(source.read(meta)).get("labels") if meta else None
        records, vectors = [], {}
        for name in names:
            suffix = Path(name).suffix.lower()
            if suffix in NON_IMAGE_EXTENSIONS:
                continue
            if not _is_image(source.read(name)):
                if suffix in IMAGE_EXTENSIONS:
                    warnings.warn(f"skipping unreadable image {self.root}/{name}", stacklevel=3)
                continue
            records.append(ImageRecord(name))
        if not records:
            raise DatasetLayoutError(f"no readable image found under {self.root}; expected {LAYOUT}")
        if not self.use_labels:
            return records, vectors
        if labels_json:
            table = {str(n): v for n, v in labels_json}
            missing = [r.name for r in records if r.name not in table]
            if missing:
                raise DatasetLayoutError(f"{self.root}/{meta} has no label for {missing[:3]} ({len(missing)} images)")
            if all(isinstance(v, int) for v in table.values()):
                self.c_dim = max(table.values()) + 1
                self.label_names = [str(i) for i in range(self.c_dim)]
                return [ImageRecord(r.name, int(table[r.name])) for r in records], vectors
            vectors = {r.name: np.asarray(table[r.name], dtype=np.float32).reshape(-1) for r in records}
            self.c_dim = len(next(iter(vectors.values())))
            return records, vectors
        classes = sorted({r.name.split("/")[0] for r in records if "/" in r.name})
        if not classes or any("/" not in r.name for r in records):
            raise DatasetLayoutError(f"use_labels=True but {self.root} has images outside class sub-folders and no "
                                     f"dataset.json; expected root/<class>/<image> or {LAYOUT}")
        self.label_names, self.c_dim = classes, len(classes)
        index = {name: i for i, name in enumerate(classes)}
        return [ImageRecord(r.name, index[r.name.split("/")[0]]) for r in records], vectors

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if not self.root.exists():
            raise DatasetLayoutError(f"image dataset root {self.root} does not exist; expected {LAYOUT}")
        source = ImageSource(self.root)
        records, vectors = self._scan(source)
        order = np.random.default_rng(self.seed).permutation(len(records))
        n_val = int(round(len(records) * self.val_fraction))
        val = [records[i] for i in sorted(order[:n_val])]
        train = [records[i] for i in sorted(order[n_val:])]
        log.info("images from %s: %d train, %d val, c_dim %d", self.root, len(train), len(val), self.c_dim)
        args = dict(resolution=self.resolution, channels=self.channels, c_dim=self.c_dim, label_vectors=vectors)
        self.train_set = ImageDataset(source, train, xflip=self.xflip, **args)
        self.val_set = ImageDataset(source, val, **args)

    def model_kwargs(self) -> dict[str, int]:
        """``dict(img_resolution, img_channels, c_dim)`` for the GAN (after ``setup``)."""
        self.setup("fit")
        return {"img_resolution": self.resolution, "img_channels": self.channels, "c_dim": self.c_dim}

    def _loader(self, dataset: ImageDataset, shuffle: bool) -> DataLoader:
        return make_loader(dataset, self.batch_size, shuffle, self.seed, self.num_workers, starting_epoch(self),
                           drop_last=shuffle and len(dataset) >= self.batch_size,
                           persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
