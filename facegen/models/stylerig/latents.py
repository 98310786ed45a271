"""Latents of a frozen StyleGAN2 generator as a datamodule: the training data of StyleRig's DFR and RigNet.

StyleRig (Tewari et al., CVPR 2020, sec. 4-5) trains on latents ``w`` of a pretrained generator and
its images ``G(w)``; no real images are needed. :class:`LatentDataModule` loads the generator from a
checkpoint (facegen ``.ckpt``, rosinality ``.pt`` or NVlabs ``.pkl``, via
:func:`facegen.models.stylegan2.formats.load_generator`), draws seeded ``z ~ N(0, I)`` per split,
maps them to W+ (``[N, num_ws, w_dim]``, optionally truncated) and, with ``cache_images``, renders
``G(w)`` once (the generator is frozen, so its images never change).

With ``generator_path=null`` it builds a small seeded random generator (the smoke-test default that
runs with no files), saves it as a rosinality ``.pt`` in the cache and says so in one log line; such a
generator makes noise images, not faces.

``truth_set()`` renders faces with known parameters and landmarks from the procedural morphable model
with the settings of the synthetic face data (:mod:`facegen.data.synthetic`), for the DFR's parameter
error against ground truth.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from facegen.data.synthetic import (
    face_renderer,
    make_ranges,
    make_render_settings,
    render_faces,
    sample_faces,
)
from facegen.errors import CheckpointError, MissingWeightsError
from facegen.models.stylegan2.formats import load_generator, save_rosinality
from facegen.models.stylegan2.networks import Generator
from facegen.morphable import ProceduralFaceModel

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
#: architecture of the random smoke-test generator used when no generator_path is given
RANDOM_GENERATOR = {"z_dim": 64, "w_dim": 64, "img_resolution": 32, "mapping_layers": 2, "channel_base": 512,
                    "channel_max": 32}


class LatentDataset(Dataset):
    """Items ``dict(w_plus [num_ws, w_dim], z [z_dim], index, image [3, R, R] in [-1, 1] if cached)``."""

    def __init__(self, w_plus: torch.Tensor, z: torch.Tensor, images: torch.Tensor | None = None):
        self.w_plus, self.z, self.images = w_plus, z, images

    def __len__(self) -> int:
        return self.w_plus.shape[0]

    def __getitem__(self, index: int) -> dict:
        item = {"w_plus": self.w_plus[index], "z": self.z[index], "index": index}
        if self.images is not None:
            item["image"] = self.images[index]
        return item


class LatentDataModule(LightningDataModule):
    """Seeded W+ latents (and optionally images) of a frozen generator, split into train/val/test.

    Args:
        generator_path: generator checkpoint (facegen ``.ckpt``, rosinality ``.pt``, NVlabs ``.pkl``);
            ``None``: a seeded random generator with :data:`RANDOM_GENERATOR` (+ ``random_generator``) sizes.
        cache_dir: where the random generator file is written.
        n_train, n_val, n_test: latents per split (seeds ``seed``, ``seed + 1``, ``seed + 2``).
        batch_size, num_workers: loaders.
        truncation_psi: ``w <- w_avg + psi (w - w_avg)``.
        cache_images: compute ``G(w)`` once in ``setup`` (batches then carry ``image``).
        truth: ``dict(n, seed, model_seed, expressions)`` of :meth:`truth_set` (``n = 0``: none).
        render: :class:`facegen.data.synthetic.RenderSettings` fields of the face world the generator
            was trained on (camera, background); passed to the model so its renderer matches.
        random_generator: overrides of :data:`RANDOM_GENERATOR`.

    Raises:
        MissingWeightsError: ``generator_path`` is set but the file does not exist.
        CheckpointError: the file is not a generator checkpoint, or the generator is conditional.
    """

    def __init__(self, generator_path: str | None = None, cache_dir: str | Path = "~/.cache/facegen",
                 n_train: int = 512, n_val: int = 16, n_test: int = 64, batch_size: int = 8, num_workers: int = 0,
                 truncation_psi: float = 1.0, cache_images: bool = True, seed: int = 0, truth: dict | None = None,
                 render: dict | None = None, random_generator: dict | None = None):
        super().__init__()
        self.generator_path = None if generator_path in (None, "", "null") else str(generator_path)
        self.cache_dir = Path(cache_dir).expanduser()
        self.sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.truncation_psi, self.cache_images, self.seed = float(truncation_psi), bool(cache_images), int(seed)
        self.truth = {"n": 16, "seed": 1000, "model_seed": 0, "expressions": "presets", **dict(truth or {})}
        self.render = make_render_settings(render)
        self.random_generator = {**RANDOM_GENERATOR, **dict(random_generator or {})}
        self.datasets: dict[str, LatentDataset] = {}
        self.G: Generator | None = None
        self.resolved_path: Path | None = None

    # ---------------------------------------------------------------- generator
    def _random_generator_path(self) -> Path:
        key = hashlib.sha1(json.dumps({**self.random_generator, "seed": self.seed}, sort_keys=True).encode())
        return self.cache_dir / "latents" / f"random_generator_{key.hexdigest()[:12]}.pt"

    def prepare_data(self) -> None:
        """Write the random generator file when no ``generator_path`` is configured (once per settings)."""
        if self.generator_path is not None:
            if not Path(self.generator_path).expanduser().is_file():
                raise MissingWeightsError(f"generator_path {self.generator_path} does not exist; expected a StyleGAN2 "
                                          "checkpoint (facegen .ckpt, rosinality .pt or NVlabs .pkl)")
            return
        path = self._random_generator_path()
        if not path.is_file():
            torch.manual_seed(self.seed)
            G = Generator(**self.random_generator).eval()
            with torch.no_grad():                          # w_avg as the mapping's mean (rosinality files store it)
                z = torch.randn(1024, G.z_dim, generator=torch.Generator().manual_seed(self.seed))
                G.mapping.w_avg.copy_(G.mapping(z, None, update_w_avg=False)[:, 0].mean(0))
            path.parent.mkdir(parents=True, exist_ok=True)
            save_rosinality(G, path)

    def load_generator(self) -> Generator:
        """The frozen generator (eval mode, no gradients); see the class docstring."""
        if self.G is None:
            self.prepare_data()
            if self.generator_path is None:
                self.resolved_path = self._random_generator_path()
                log.warning("no generator_path configured: using a random-initialised %d px generator (%s); its images "
                            "are noise, set generator_path for a trained one", self.random_generator["img_resolution"],
                            self.resolved_path)
            else:
                self.resolved_path = Path(self.generator_path).expanduser().resolve()
            G, _ = load_generator(self.resolved_path)
            if G.c_dim:
                raise CheckpointError(f"{self.resolved_path}: a conditional generator (c_dim={G.c_dim}); "
                                      "StyleRig needs an unconditional one")
            self.G = G.eval().requires_grad_(False)
        return self.G

    # ---------------------------------------------------------------- data
    @torch.no_grad()
    def _sample(self, split: str) -> LatentDataset:
        G = self.load_generator()
        n = self.sizes[split]
        z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(self.seed + SPLITS.index(split)))
        w_plus = torch.cat([G.mapping(z[i:i + 256], None, truncation_psi=self.truncation_psi, update_w_avg=False)
                            for i in range(0, n, 256)]) if n else torch.zeros(0, G.num_ws, G.w_dim)
        images = None
        if self.cache_images and n:
            images = torch.cat([G.synthesis(w_plus[i:i + 32], noise_mode="const").clamp(-1, 1)
                                for i in range(0, n, 32)])
        return LatentDataset(w_plus, z, images)

    def setup(self, stage: str | None = None) -> None:
        """Sample every split once (deterministic for a seed)."""
        for split in SPLITS:
            if split not in self.datasets:
                self.datasets[split] = self._sample(split)

    def dataset(self, split: str) -> LatentDataset:
        """The :class:`LatentDataset` of ``split`` (``train``, ``val``, ``test``)."""
        self.setup()
        return self.datasets[split]

    def model_kwargs(self) -> dict:
        """``dict(generator_path, img_resolution, num_ws, w_dim, render)`` for the StyleRig modules."""
        G = self.load_generator()
        render = asdict(self.render)
        return {"generator_path": str(self.resolved_path), "img_resolution": G.img_resolution, "num_ws": G.num_ws,
                "w_dim": G.w_dim, "render": {"fov_degrees": render["fov_degrees"], "margin": render["margin"],
                                             "background": list(render["background"])}}

    @torch.no_grad()
    def truth_set(self, resolution: int | None = None) -> dict | None:
        """Faces with known parameters, rendered like the synthetic face data, or ``None`` when ``truth.n == 0``.

        Returns ``dict(images [N, 3, R, R] in [-1, 1], params [N, P], landmarks [N, 68, 2] pixels,
        model_seed)`` at ``resolution`` (default: the generator's).
        """
        n = int(self.truth["n"])
        if n <= 0:
            return None

        resolution = int(resolution or self.load_generator().img_resolution)
        model = ProceduralFaceModel(seed=int(self.truth["model_seed"]))
        params, _, _ = sample_faces(model, n, int(self.truth["seed"]), make_ranges(self.truth.get("ranges")),
                                    self.truth["expressions"])
        renderer = face_renderer(model, resolution, self.render)
        images, landmarks = [], []
        for i in range(0, n, 16):
            im, lm = render_faces(renderer, params[i:i + 16], self.render.supersample)
            images.append(im)
            landmarks.append(lm)
        pixels = torch.from_numpy(np.concatenate(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return {"images": pixels, "params": params, "landmarks": torch.from_numpy(np.concatenate(landmarks)),
                "model_seed": int(self.truth["model_seed"])}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.dataset(split), batch_size=self.batch_size, shuffle=shuffle, drop_last=shuffle,
                          num_workers=self.num_workers,
                          generator=torch.Generator().manual_seed(self.seed) if shuffle else None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
