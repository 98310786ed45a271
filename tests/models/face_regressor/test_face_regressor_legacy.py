"""Face-regressor files written before the redesign (facegen d915e12: ``tests/data/legacy/face_regressor.pt`` and
the Lightning checkpoint ``face_regressor.ckpt`` with flat hyper-parameters) load through the new code and
reproduce the output the old code computed (``expected_outputs.json``, see ``expected_outputs.py``)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from facegen.models.face_regressor import FaceRegressorModule, load_face_regressor

LEGACY = Path(__file__).resolve().parents[2] / "data" / "legacy"
EXPECTED = json.loads((LEGACY / "expected_outputs.json").read_text())

pytestmark = pytest.mark.usefixtures("one_thread")


def legacy_images() -> torch.Tensor:
    """The images of expected_outputs.py: one generator seeded 0 first draws the StyleGAN2 fixture's ``z [2, 16]``
    and the DFR fixture's ``w [2, 8, 16]``, then ``images [2, 3, 16, 16]`` uniform in [-1, 1]."""
    g = torch.Generator().manual_seed(0)
    torch.randn(2, 16, generator=g)
    torch.randn(2, 8, 16, generator=g)
    return torch.rand(2, 3, 16, 16, generator=g) * 2 - 1


def test_legacy_regressor_file_reproduces_its_output():
    model = load_face_regressor(LEGACY / "face_regressor.pt")
    value = float(model.eval().predict(legacy_images())["params"].double().sum())
    assert value == pytest.approx(EXPECTED["face_regressor"], rel=1e-6)


def test_legacy_lightning_checkpoint_loads_grouped_and_gives_the_same_network():
    module = FaceRegressorModule.from_checkpoint(LEGACY / "face_regressor.ckpt")
    assert module.hparams["network"]["width"] == 4 and module.hparams["network"]["exp_bounds"] == [0.0, 1.0]
    assert module.optimizer_spec["lr"] == 0.002 and module.optimizer_spec["weight_decay"] == 0.0001
    assert module.augmentation.strength == 1.0 and module.loss.expression == 2.0
    value = float(module.regressor.eval().predict(legacy_images())["params"].double().sum())
    assert value == pytest.approx(EXPECTED["face_regressor"], rel=1e-6)
