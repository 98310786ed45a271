"""3D face mesh data: one Lightning datamodule over four mesh sources.

``MeshDataModule(source="procedural" | "ict" | "coma" | "facescape", root=..., ...)`` turns a
source (see :mod:`facegen.data.mesh_sources`) into a :class:`MeshCollection` of registered meshes
with identity and expression labels and a seeded train/val/test split, caches it once as
``.npy`` files (read back with ``np.load(mmap_mode="r")``, so DDP ranks and dataloader workers
share the page cache), and serves per-vertex normalised batches

    dict(vertices [B, V, 3] float32 (normalised), identity [B] int64, expression [B] int64, index [B] int64)

where ``index`` is the sample's row in :attr:`MeshDataModule.collection`. Normalisation is
``(x - mean) / std`` with per-vertex statistics of the train split (FaceTuneGAN, Olivier et al.
2023, and CoMA, Ranjan et al. 2018, train on normalised vertices).

Cache layout (``<cache_dir>/<source>-<key>/``): ``vertices.npy [N,V,3] float32 mm``,
``identity.npy``, ``expression.npy``, ``split.npy``, ``faces.npy``, ``template.npy``,
``mean.npy``, ``std.npy`` (train split, unfloored) and ``meta.json`` (label names, options).
The key is a SHA-1 of the source, its root, the options, the seed and split fractions, the size
and mtime of every input file and of the source's code. A cache folder is written under a
temporary name and moved into place with ``os.replace``, so it is either complete or absent.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from facegen.data.collection import SPLITS, MeshCollection
from facegen.data.loader import make_loader, starting_epoch
from facegen.data.mesh_sources import allocate_in_memory, get_source
from facegen.errors import DatasetLayoutError
from facegen.geometry import build_mesh_hierarchy
from facegen.utils import file_lock

log = logging.getLogger(__name__)

CACHE_VERSION = 1
_ARRAYS = ("vertices", "identity", "expression", "split", "faces", "template", "mean", "std")


class MeshDataset(Dataset):
    """Samples ``dict(vertices [V,3] float32, identity, expression, index)`` of a collection's rows.

    ``vertices`` is ``(x - mean) / std`` when ``mean``/``std`` are given, else mm. A dataset built
    on a cached ``.npy`` file pickles only the file name and re-opens the memory map in each
    dataloader worker, so workers share pages instead of copying the array.
    """

    def __init__(
        self,
        collection: MeshCollection,
        indices: np.ndarray,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ) -> None:
        self.rows = np.asarray(indices, dtype=np.int64)
        self.identity = collection.identity
        self.expression = collection.expression
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        self._filename = getattr(collection.vertices, "filename", None)
        self._vertices = collection.vertices

    @property
    def vertices(self) -> np.ndarray:
        if self._vertices is None:
            self._vertices = np.load(self._filename, mmap_mode="r")
        return self._vertices

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._filename is not None:
            state["_vertices"] = None
        return state

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = int(self.rows[i])
        vertices = np.array(self.vertices[row], dtype=np.float32)
        if self.mean is not None:
            vertices = (vertices - self.mean) / self.std
        return {
            "vertices": torch.from_numpy(vertices),
            "identity": torch.tensor(int(self.identity[row])),
            "expression": torch.tensor(int(self.expression[row])),
            "index": torch.tensor(row),
        }


def train_statistics(vertices: np.ndarray, rows: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex mean and (population) standard deviation over ``vertices[rows]``.

    Accumulated in float64 over chunks, so a memory-mapped ``[N, V, 3]`` array is streamed.

    Returns:
        ``mean [V, 3]``, ``std [V, 3]``, float32 mm.

    Raises:
        DatasetLayoutError: ``rows`` is empty (no train samples).
    """
    if len(rows) == 0:
        raise DatasetLayoutError("the train split is empty: cannot compute normalisation statistics")
    total = np.zeros(vertices.shape[1:], dtype=np.float64)
    total_sq = np.zeros_like(total)
    for start in range(0, len(rows), chunk):
        block = np.asarray(vertices[np.sort(rows[start : start + chunk])], dtype=np.float64)
        total += block.sum(axis=0)
        total_sq += np.square(block).sum(axis=0)
    mean = total / len(rows)
    var = np.maximum(total_sq / len(rows) - np.square(mean), 0.0)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def cache_key(source: str, root: Path | None, options: dict[str, Any], files: list[Path]) -> str:
    """SHA-1 (first 16 hex digits) of everything a collection depends on.

    ``options`` must be JSON-serialisable up to ``str()`` of paths; each file contributes its
    path, size and ``st_mtime_ns``.
    """
    stamps = []
    for path in files:
        stat = Path(path).stat()
        stamps.append([str(path), stat.st_size, stat.st_mtime_ns])
    payload = {
        "version": CACHE_VERSION,
        "source": source,
        "root": None if root is None else str(root),
        "options": options,
        "files": stamps,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def write_cache(directory: Path, build) -> None:
    """Build a collection into ``directory`` atomically.

    ``build(allocate)`` must return a :class:`MeshCollection` whose ``vertices`` came from
    ``allocate(n, v)``; here ``allocate`` opens ``vertices.npy`` as a writable memory map inside a
    temporary sibling folder, which is moved to ``directory`` with ``os.replace`` when complete.
    If another process finished the same cache first, its copy is kept.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:

        def allocate(n: int, v: int) -> np.ndarray:
            return np.lib.format.open_memmap(tmp / "vertices.npy", mode="w+", dtype=np.float32, shape=(n, v, 3))

        collection = build(allocate)
        collection.validate(str(directory))
        if getattr(collection.vertices, "filename", None) is None:  # the source did not use allocate
            np.save(tmp / "vertices.npy", np.asarray(collection.vertices, dtype=np.float32))
        else:
            collection.vertices.flush()
        mean, std = train_statistics(collection.vertices, collection.indices("train"))
        arrays = {
            "identity": collection.identity.astype(np.int64),
            "expression": collection.expression.astype(np.int64),
            "split": collection.split.astype("<U5"),
            "faces": collection.faces.astype(np.int64),
            "template": collection.template.astype(np.float32),
            "mean": mean,
            "std": std,
        }
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array)
        meta = {"identity_names": collection.identity_names, "expression_names": collection.expression_names}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        del collection
        try:
            os.replace(tmp, directory)
        except OSError:
            if not (directory / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_cache(directory: Path) -> tuple[MeshCollection, np.ndarray, np.ndarray]:
    """Open a cache folder written by :func:`write_cache`.

    Returns:
        ``(collection, mean [V,3], std [V,3])``; ``collection.vertices`` is a read-only memory map.
    """
    directory = Path(directory)
    meta = json.loads((directory / "meta.json").read_text())
    arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r" if name == "vertices" else None)
              for name in _ARRAYS}
    mean, std = arrays.pop("mean"), arrays.pop("std")
    return MeshCollection(**arrays, **meta), mean, std


class MeshDataModule(L.LightningDataModule):
    """Lightning datamodule over one mesh source, with a memory-mapped on-disk cache.

    Args:
        source: ``"procedural"`` (embedded default, no files), ``"ict"``, ``"coma"`` or ``"facescape"``.
        root: dataset folder (``None`` for ``procedural``); see each source for its layout.
        cache_dir: folder for preprocessed collections and mesh hierarchies; ``None`` builds the
            collection in memory in :meth:`setup` (fine for the procedural source).
        batch_size, num_workers: dataloader settings.
        seed: sampling seed of the procedural/ICT sources and of the split.
        normalise: serve ``(x - mean) / std`` (train-split statistics) instead of mm.
        val_fraction, test_fraction: split fractions of the source's split groups
            (identities, or samples for CoMA; see ``split_by`` of each source).
        std_floor: lower bound (mm) on the per-vertex std, so vertices that barely move are not
            blown up by the normalisation.
        **source_kwargs: options of the source's ``build`` (e.g. ``n_identities``, ``overrides``).

    Raises (from :meth:`prepare_data` / :meth:`setup`):
        DatasetLayoutError: unknown source, missing root or wrong folder layout.
        MeshFormatError: a mesh file is unreadable, has NaN/inf or the wrong vertex count.
    """

    def __init__(
        self,
        source: str = "procedural",
        root: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        seed: int = 0,
        normalise: bool = True,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        std_floor: float = 0.1,
        **source_kwargs: Any,
    ) -> None:
        super().__init__()
        self.source_name = source
        self.source = get_source(source)
        self.root = None if root is None else Path(root).expanduser().resolve()
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.normalise = normalise
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.std_floor = std_floor
        self.source_kwargs = dict(source_kwargs)
        self._collection: MeshCollection | None = None
        self._cache_path: Path | None = None

    @classmethod
    def config_kwargs_targets(cls, node) -> list:
        """Where ``**source_kwargs`` go: the source's ``build`` (so :mod:`facegen.config.schema` can check the
        keys of ``data:`` against it, with a "did you mean")."""
        return [get_source(node.get("source", "procedural")).build]

    # ------------------------------------------------------------------ preparation
    def _build(self, allocate) -> MeshCollection:
        return self.source.build(
            self.root,
            allocate=allocate,
            seed=self.seed,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            **self.source_kwargs,
        )

    @property
    def cache_path(self) -> Path | None:
        """The cache folder of this configuration (``None`` without ``cache_dir``)."""
        if self.cache_dir is None:
            return None
        if self._cache_path is None:
            files = list(self.source.source_files(self.root, **self.source_kwargs)) + [Path(self.source.__file__)]
            options = {"seed": self.seed, "val_fraction": self.val_fraction,
                       "test_fraction": self.test_fraction, **self.source_kwargs}
            key = cache_key(self.source_name, self.root, options, files)
            self._cache_path = self.cache_dir / f"{self.source_name}-{key}"
        return self._cache_path

    def prepare_data(self) -> None:
        """Write the cache once (Lightning calls this on rank 0 only); a no-op when it exists.

        Two processes building the same cache at once (two runs started together) take turns on a lock file
        next to it (``<cache>.lock``): the second finds the first one's cache and reads it."""
        path = self.cache_path
        if path is None or (path / "meta.json").is_file():
            return
        with file_lock(path.with_name(f"{path.name}.lock")):
            if (path / "meta.json").is_file():
                return
            log.info("building %s mesh cache in %s", self.source_name, path)
            write_cache(path, self._build)

    def setup(self, stage: str | None = None) -> None:
        """Open the cache (or build in memory), compute the statistics and the three datasets."""
        if self._collection is not None:
            return
        if self.cache_path is None:
            collection = self._build(allocate_in_memory)
            collection.validate(f"{self.source_name} source")
            mean, std = train_statistics(collection.vertices, collection.indices("train"))
        else:
            self.prepare_data()
            collection, mean, std = read_cache(self.cache_path)
        self._collection = collection
        if self.normalise:
            self._mean, self._std = mean.astype(np.float32), np.maximum(std, self.std_floor).astype(np.float32)
        else:
            self._mean = np.zeros_like(mean, dtype=np.float32)
            self._std = np.ones_like(std, dtype=np.float32)
        stats = (self._mean, self._std) if self.normalise else (None, None)
        self.datasets = {split: MeshDataset(collection, collection.indices(split), *stats) for split in SPLITS}

    # ------------------------------------------------------------------ access
    def _require_setup(self) -> MeshCollection:
        if self._collection is None:
            raise RuntimeError("MeshDataModule: call prepare_data() and setup() first")
        return self._collection

    @property
    def collection(self) -> MeshCollection:
        """All samples, unnormalised mm (``vertices`` memory-mapped when cached)."""
        return self._require_setup()

    def collection_for(self, split: str) -> MeshCollection:
        """The samples of ``split`` (``"train"``/``"val"``/``"test"``) with in-memory mm vertices."""
        if split not in SPLITS:
            raise DatasetLayoutError(f"split={split!r}: expected one of {list(SPLITS)}")
        collection = self._require_setup()
        return collection.subset(collection.indices(split))

    @property
    def mean(self) -> np.ndarray:
        """``[V, 3] float32`` mm: per-vertex train mean (zeros when ``normalise=False``)."""
        self._require_setup()
        return self._mean

    @property
    def std(self) -> np.ndarray:
        """``[V, 3] float32`` mm: per-vertex train std floored at ``std_floor`` (ones when ``normalise=False``)."""
        self._require_setup()
        return self._std

    @property
    def template(self) -> np.ndarray:
        """``[V, 3] float32`` mm: the source's template mesh."""
        return np.asarray(self._require_setup().template, dtype=np.float32)

    @property
    def faces(self) -> np.ndarray:
        """``[F, 3] int64`` triangles."""
        return np.asarray(self._require_setup().faces, dtype=np.int64)

    @property
    def style_names(self) -> list[str]:
        """Expression (style) labels, index 0 = ``"neutral"``."""
        return list(self._require_setup().expression_names)

    @property
    def hierarchy_cache_dir(self) -> Path | None:
        """Where mesh hierarchies of this data's template are cached (``<cache_dir>/hierarchy``)."""
        return None if self.cache_dir is None else self.cache_dir / "hierarchy"

    @cached_property
    def hierarchy(self):
        """:class:`facegen.geometry.MeshHierarchy` of the template (CoMA down/up transforms, spirals)."""
        return build_mesh_hierarchy(self.template, self.faces, cache_dir=self.hierarchy_cache_dir)

    def normalise_vertices(self, x):
        """``(x - mean) / std`` for ``x [..., V, 3]`` mm (torch tensor or numpy array)."""
        mean, std = self._stats_like(x)
        return (x - mean) / std

    def denormalise(self, x):
        """``x * std + mean``: normalised ``[..., V, 3]`` (torch or numpy) back to mm."""
        mean, std = self._stats_like(x)
        return x * std + mean

    def _stats_like(self, x):
        if isinstance(x, torch.Tensor):
            return (torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
                    torch.as_tensor(self.std, dtype=x.dtype, device=x.device))
        return self.mean, self.std

    def model_kwargs(self) -> dict[str, Any]:
        """Data facts a mesh model is built from (see docs/ARCHITECTURE.md, 'How a model meets its data').

        Returns:
            ``template_vertices [V,3] float32 mm``, ``template_faces [F,3] int64``, ``num_styles``,
            ``style_names``, ``mean [V,3]``, ``std [V,3]`` (float32 mm) and ``hierarchy_cache_dir``
            (str or None).
        """
        return {
            "template_vertices": self.template,
            "template_faces": self.faces,
            "num_styles": len(self.style_names),
            "style_names": self.style_names,
            "mean": self.mean,
            "std": self.std,
            "hierarchy_cache_dir": None if self.hierarchy_cache_dir is None else str(self.hierarchy_cache_dir),
        }

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self._require_setup()
        return make_loader(self.datasets[split], self.batch_size, shuffle, self.seed, self.num_workers,
                           starting_epoch(self), persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
