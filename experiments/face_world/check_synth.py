"""Done-when item 2: the datasets written by ``python -m facegen.synth`` load through facegen's data code.

    python -m facegen.synth images n=1000 resolution=128 out=runs/synth/faces128
    python -m facegen.synth videos n=19 out=runs/synth/clips
    python experiments/face_world/check_synth.py runs/synth/faces128 runs/synth/clips

Loads the image zip with :class:`facegen.data.images.ImageDataModule` (and its ground truth with
:class:`facegen.data.synthetic.FaceParamsDataset`), the clips with
:class:`facegen.data.synthetic.ExpressionClipDataset` in a DataLoader, prints what a batch holds, and
writes ``<clips>/grid.png`` (one row per clip: frames from neutral to full strength).
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from facegen.data.images import ImageDataModule
from facegen.data.synthetic import (
    ExpressionClipDataset,
    FaceParamsDataset,
    image_grid,
    load_ground_truth,
)
from facegen.utils import atomic_write


def main(images: str, clips: str) -> None:
    images, clips = Path(images), Path(clips)
    table = load_ground_truth(images)
    dm = ImageDataModule(images / "faces.zip", resolution=table["resolution"], batch_size=8, use_labels=True)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    print(f"images: {len(dm.train_set)} in {images / 'faces.zip'}, batch image {tuple(batch['image'].shape)} "
          f"range [{batch['image'].min():.2f}, {batch['image'].max():.2f}], c_dim {dm.c_dim}")
    truth = FaceParamsDataset(dm.train_set, table, table["resolution"])
    item = truth[0]
    print(f"ground truth: params {tuple(item['params'].shape)}, landmarks {tuple(item['landmarks'].shape)}")

    dataset = ExpressionClipDataset(clips)
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    print(f"clips: {len(dataset)} in {clips}, batch frames {tuple(batch['frames'].shape)}, intensity "
          f"{batch['intensity'][0, [0, -1]].tolist()}, landmarks {tuple(batch['landmarks'].shape)}, "
          f"expressions {batch['expression']}")
    rows = []
    for i in range(min(len(dataset), 8)):
        frames = dataset[i]["frames"]                                     # [T, 3, H, W] in [0, 1]
        pick = torch.linspace(0, len(frames) - 1, 8).round().long()
        rows.append((frames[pick].permute(0, 2, 3, 1).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8))
    grid = image_grid(np.concatenate(rows), columns=8)
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    atomic_write(clips / "grid.png", buffer.getvalue())
    print(f"clip grid: {clips / 'grid.png'}")


if __name__ == "__main__":
    main(*(sys.argv[1:3] if len(sys.argv) >= 3 else ("runs/synth/faces128", "runs/synth/clips")))
