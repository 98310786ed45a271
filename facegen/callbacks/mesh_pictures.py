"""Pictures of a mesh autoencoder during training: reconstructions with error maps, expression transfers.

Works with any LightningModule that has ``reconstruct(x_mm)`` and ``translate(content_mm, style_mm)``
on ``[B, V, 3]`` mm tensors (FaceTuneGAN) and a datamodule with ``collection_for("val")``
(:class:`facegen.data.meshes.MeshDataModule`). Pictures follow FaceTuneGAN's figures 4/5 (input,
reconstruction, error map in mm) and 7 (neutral target, style source, output, ground truth).
"""
from __future__ import annotations

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from facegen.geometry import save_obj
from facegen.metrics.mesh import draw_triplets, per_vertex_error
from facegen.render import render_heatmap, render_shaded
from facegen.reporting import log_images, log_mesh, run_dir


def _row(images: list[np.ndarray]) -> np.ndarray:
    """Images of equal height side by side: ``[H, sum(W), 3]`` uint8."""
    return np.concatenate(images, axis=1)


class MeshPictures(Callback):
    """Each ``every_n_epochs`` validation epoch, render fixed val samples and log them.

    Logged keys (PNG files under ``<run_dir>/pictures/<key>/`` through :func:`facegen.reporting.log_images`):
    - ``val/reconstruction``: one row per sample: input | reconstruction | per-vertex error (mm) heat map;
    - ``val/transfer``: one row per triplet ``(c, c', s)``: neutral target ``x_{c,neutral}`` | style
      source ``x_{c',s}`` | output ``Dec(E_c(x_{c,neutral}), E_s(x_{c',s}))`` | ground truth ``x_{c,s}``
      | error heat map (mm);
    - ``val/reconstruction_mesh``: the first reconstruction as ``.obj`` (``<run_dir>/pictures/meshes/``),
      sent to W&B as a 3D object.

    Args:
        num_samples: reconstruction rows; samples are drawn once from the val split with ``seed``.
        num_transfers: transfer rows (triplets drawn with ``seed``; fewer when the split has fewer).
        size: render size in pixels.
        vmax_mm: top of the error colour bar, mm.
        every_n_epochs: render every n-th validation epoch.
        seed: seed of the sample and triplet choice (the same meshes every epoch).
    """

    def __init__(self, num_samples: int = 4, num_transfers: int = 3, size: int = 192, vmax_mm: float = 5.0,
                 every_n_epochs: int = 1, seed: int = 0) -> None:
        self.num_samples = num_samples
        self.num_transfers = num_transfers
        self.size = size
        self.vmax_mm = vmax_mm
        self.every_n_epochs = every_n_epochs
        self.seed = seed

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if trainer.current_epoch % self.every_n_epochs != 0:
            return
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "collection_for"):
            return
        collection = datamodule.collection_for("val")
        if len(collection) == 0:
            return
        self.log_reconstructions(trainer, pl_module, collection)
        self.log_transfers(trainer, pl_module, collection)

    def _mm(self, pl_module: LightningModule, vertices: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(vertices, dtype=np.float32), device=pl_module.device)

    def log_reconstructions(self, trainer: Trainer, pl_module: LightningModule, collection) -> list:
        """Render and log input | reconstruction | error map rows; returns the written PNG paths."""
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.choice(len(collection), size=min(self.num_samples, len(collection)), replace=False))
        x = self._mm(pl_module, collection.vertices[rows])
        x_r = pl_module.reconstruct(x).float()
        errors = per_vertex_error(x_r, x).cpu().numpy()
        x, x_r, faces = x.cpu().numpy(), x_r.cpu().numpy(), np.asarray(collection.faces)
        images, captions = [], []
        for i, row in enumerate(rows.tolist()):
            images.append(_row([render_shaded(x[i], faces, self.size), render_shaded(x_r[i], faces, self.size),
                                render_heatmap(x_r[i], faces, errors[i], self.vmax_mm, self.size)]))
            captions.append(f"val #{row} {collection.expression_names[collection.expression[row]]}: "
                            f"input | reconstruction | error (AVD {errors[i].mean():.2f} mm)")
        paths = log_images(trainer, "val/reconstruction", images, captions)
        mesh_path = run_dir(trainer) / "pictures" / "meshes" / f"{trainer.global_step:08d}_reconstruction.obj"
        save_obj(mesh_path, x_r[0], faces)
        log_mesh(trainer, "val/reconstruction_mesh", mesh_path)
        return paths

    def log_transfers(self, trainer: Trainer, pl_module: LightningModule, collection) -> list:
        """Render and log expression-transfer rows; returns the written PNG paths (none without triplets)."""
        triplets = draw_triplets(collection.identity, collection.expression, self.num_transfers, seed=self.seed)
        if not triplets:
            return []
        first_row = {}
        for row, key in enumerate(zip(np.asarray(collection.identity).tolist(),
                                      np.asarray(collection.expression).tolist())):
            first_row.setdefault(key, row)
        rows = {
            "target": [first_row[(c, 0)] for c, _, _ in triplets],
            "source": [first_row[(cp, s)] for _, cp, s in triplets],
            "truth": [first_row[(c, s)] for c, _, s in triplets],
        }
        meshes = {k: np.asarray(collection.vertices[np.asarray(v)], dtype=np.float32) for k, v in rows.items()}
        output = pl_module.translate(self._mm(pl_module, meshes["target"]),
                                     self._mm(pl_module, meshes["source"])).float().cpu().numpy()
        errors = per_vertex_error(output, meshes["truth"])
        faces = np.asarray(collection.faces)
        images, captions = [], []
        for i, (c, cp, s) in enumerate(triplets):
            images.append(_row([render_shaded(meshes["target"][i], faces, self.size),
                                render_shaded(meshes["source"][i], faces, self.size),
                                render_shaded(output[i], faces, self.size),
                                render_shaded(meshes["truth"][i], faces, self.size),
                                render_heatmap(output[i], faces, errors[i], self.vmax_mm, self.size)]))
            captions.append(f"{collection.expression_names[s]}: {collection.identity_names[c]} neutral | "
                            f"{collection.identity_names[cp]} style | output | ground truth | "
                            f"error (AVD {errors[i].mean():.2f} mm)")
        return log_images(trainer, "val/transfer", images, captions)
