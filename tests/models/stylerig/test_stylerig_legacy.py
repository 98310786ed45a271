"""DFR and StyleRig checkpoints written before the grouped constructors (facegen d915e12, flat hyper-parameters:
``tests/data/legacy/{dfr,stylerig}.ckpt``) load through ``from_checkpoint`` and reproduce the outputs the old code
computed (``expected_outputs.json``, made by ``expected_outputs.py``).

The two fixtures were stripped of the procedural face model's buffers (``face_model.*``, ``renderer.model.*``,
deterministic from ``morphable.seed``) to keep them small. The test puts them back the way a user never has to:
it builds the module from the upgraded hyper-parameters (the same constructor call ``from_checkpoint`` makes),
copies that module's ``face_model``/``renderer.model`` buffers into a temporary copy of the checkpoint's state dict,
saves the copy and loads it with ``from_checkpoint``. Nothing else of the file is changed.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from facegen.checkpoints import load
from facegen.models.legacy import is_flat, upgrade_hparams
from facegen.models.stylerig import DFR, StyleRig

LEGACY = Path(__file__).resolve().parents[2] / "data" / "legacy"
EXPECTED = json.loads((LEGACY / "expected_outputs.json").read_text())
REBUILT = ("face_model.", "renderer.model.")

pytestmark = pytest.mark.usefixtures("one_thread")


def with_face_model_buffers(cls, name: str, tmp_path: Path) -> Path:
    """A temporary copy of ``tests/data/legacy/<name>.ckpt`` with the procedural face model's buffers rebuilt."""
    source = LEGACY / f"{name}.ckpt"
    checkpoint = load(source)
    assert is_flat(cls.__name__, checkpoint["hyper_parameters"])                # written by the old constructor
    hparams = upgrade_hparams(cls.__name__, checkpoint["hyper_parameters"], str(source))
    fresh = cls(**{**hparams, **cls.checkpoint_kwargs(checkpoint, str(source))})   # as from_checkpoint does
    missing = {k: v for k, v in fresh.state_dict().items() if k not in checkpoint["state_dict"]}
    assert missing and all(k.startswith(REBUILT) for k in missing), sorted(missing)[:5]
    checkpoint["state_dict"].update(missing)
    path = tmp_path / f"{name}.ckpt"
    torch.save(checkpoint, path)
    return path


def legacy_latents(num_ws: int, w_dim: int) -> torch.Tensor:
    """The ``w`` of expected_outputs.py: one generator seeded 0 first draws the StyleGAN2 fixture's
    ``z [2, 16]`` (``model.z_dim=16`` in make_legacy.sh), then ``w [2, num_ws, w_dim]``."""
    g = torch.Generator().manual_seed(0)
    torch.randn(2, 16, generator=g)
    return torch.randn(2, num_ws, w_dim, generator=g)


def test_legacy_dfr_checkpoint_reproduces_its_outputs(tmp_path):
    model = DFR.from_checkpoint(with_face_model_buffers(DFR, "dfr", tmp_path))
    assert not model.training
    assert model.hparams["network"]["hidden"] == [8] and model.optimizer_spec["lr"] == 1e-4   # upgraded keys
    assert model.loss.lambda_land == 100.0 and model.evaluation.projection_steps == 200
    w = legacy_latents(model.G.num_ws, model.G.w_dim)
    with torch.no_grad():
        value = float(model(w).double().sum())
    assert value == pytest.approx(EXPECTED["dfr"], rel=1e-6)


def test_legacy_stylerig_checkpoint_reproduces_its_outputs(tmp_path):
    # the checkpoint alone suffices: its dfr_path and generator_path are pointed at files that do not exist
    model = StyleRig.from_checkpoint(with_face_model_buffers(StyleRig, "stylerig", tmp_path),
                                     dfr_path=str(tmp_path / "absent_dfr.ckpt"),
                                     generator_path=str(tmp_path / "absent_generator.pt"))
    assert model.controls == ["pose", "expression", "illumination"] and model.hparams["network"]["latent_dim"] == 4
    assert model.loss.w_edit == 300.0 and model.evaluation.pairs == 64
    w = legacy_latents(model.G.num_ws, model.G.w_dim)
    with torch.no_grad():
        p = model.dfr(w)
        value = float(model.edit(w, p.flip(0), "pose").double().sum())
    assert value == pytest.approx(EXPECTED["stylerig"], rel=1e-6)
