"""``python -m facegen.models.face_regressor --data DIR [DIR ...] [--val DIR ...] --out FILE [--epochs N] ...``:
train the face regressor on folders of :func:`facegen.data.synthetic.write_image_dataset` (in memory, through the
LightningModule and a Lightning Trainer: :func:`~facegen.models.face_regressor.training.train_face_regressor`),
then write it with its history and one :func:`evaluate_face_regressor` report per ``--val`` folder."""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence

from facegen.models.face_regressor.data import load_synthetic_faces
from facegen.models.face_regressor.evaluation import evaluate_face_regressor
from facegen.models.face_regressor.files import save_face_regressor
from facegen.models.face_regressor.network import FaceRegressor
from facegen.models.face_regressor.training import train_face_regressor


def parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m facegen.models.face_regressor", description=__doc__)
    p.add_argument("--data", nargs="+", required=True, help="folders written by write_image_dataset")
    p.add_argument("--val", nargs="*", default=[],
                   help="held-out folders (the first is validated per epoch; all are evaluated at the end)")
    p.add_argument("--out", required=True, help="the regressor file to write (e.g. regressor.pt)")
    p.add_argument("--resolution", type=int, default=None, help="network input in pixels (default: the data's)")
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--width", type=int, default=32, help="channels of the first stage")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate (one-cycle schedule)")
    p.add_argument("--augment", type=float, default=1.0, help="photometric augmentation strength")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that passes this time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", type=json.loads, default=None,
                   help='loss weights per group as JSON, e.g. \'{"expression": 4}\' (see loss.LossWeights)')
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator (auto, cpu, gpu)")
    return p


def main(argv: Sequence[str] | None = None) -> FaceRegressor:
    """Run the command line; returns the trained network."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    val = [load_synthetic_faces(v, args.resolution, args.channels) for v in args.val]
    model = train_face_regressor(args.data, val[0] if val else None, args.resolution, args.channels, args.width,
                                 args.epochs, args.batch_size, args.lr, augment=args.augment, weights=args.weights,
                                 seed=args.seed, out=args.out, max_minutes=args.max_minutes,
                                 accelerator=args.accelerator)
    report = {str(v): evaluate_face_regressor(model, d) for v, d in zip(args.val, val)}
    save_face_regressor(model, args.out, {"history": model.history, "data": [str(d) for d in args.data],
                                          "validation": report})
    print(json.dumps(report, indent=1))
    return model
