"""No file facegen loads may run code: a crafted file of each format is refused by every loader and entry point.

Each crafted file pickles an object whose ``__reduce__`` calls ``os.system("touch <marker>")`` (the classic
pickle exploit); every test checks that the marker file was never created and that the error names the file.
Formats: a Lightning-style ``.ckpt`` (zip, a dict with the exploit inside), a ``.pt`` (``torch.save`` of the
exploit) and an NVlabs-style ``.pkl`` (plain pickle of ``{"G_ema": exploit}``).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from facegen.checkpoints import load, load_any, load_foreign
from facegen.errors import CheckpointError, FacegenError

REPO = Path(__file__).resolve().parents[1]
FORMATS = (".ckpt", ".pt", ".pkl")


class Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted(tmp_path: Path, suffix: str) -> tuple[Path, Path]:
    """A malicious file of ``suffix`` and the marker its payload would create."""
    marker = tmp_path / f"pwned{suffix.replace('.', '_')}"
    path = tmp_path / f"evil{suffix}"
    if suffix == ".ckpt":
        torch.save({"state_dict": {}, "hyper_parameters": {"x": Exploit(marker)}, "facegen_config": {}}, path)
    elif suffix == ".pt":
        torch.save(Exploit(marker), path)
    else:
        path.write_bytes(pickle.dumps({"G_ema": Exploit(marker)}))
    return path, marker


def refused(call, path: Path, marker: Path, error=FacegenError) -> str:
    with pytest.raises(error) as info:
        call(path)
    assert not marker.exists(), f"the payload of {path.name} ran"
    assert path.name in str(info.value), f"the error does not name the file: {info.value}"
    return str(info.value)


@pytest.mark.parametrize("suffix", FORMATS)
def test_the_loading_policy_refuses_and_names_the_global(tmp_path, suffix):
    path, marker = crafted(tmp_path, suffix)
    for reader in (load, load_any, load_foreign):
        message = refused(reader, path, marker, CheckpointError)
        if reader is load and suffix == ".pkl":  # a plain pickle is not a torch.save file: refused as such
            assert "not a torch.save checkpoint" in message
        else:
            assert "refused to load the global 'posix.system'" in message or "'os.system'" in message


def _loaders():
    from facegen.metrics.fid import FidKid
    from facegen.metrics.lpips import LPIPS
    from facegen.models.face_regressor import load_face_regressor
    from facegen.models.facetunegan import FaceTuneGAN
    from facegen.models.stylegan2 import StyleGAN2
    from facegen.models.stylegan2.formats import load_generator, load_nvlabs_pkl, load_rosinality
    from facegen.models.stylerig import DFR, StyleRig
    from facegen.models.stylerig.frozen import load_frozen_generator, load_landmark_model
    from facegen.models.stylerig.stylerig_module import read_dfr_checkpoint
    from facegen.recipes.macaque import load_G

    return {
        "load_generator (generate/project/micromotion ckpt_path)": load_generator,
        "load_nvlabs_pkl": load_nvlabs_pkl, "load_rosinality": load_rosinality,
        "StyleGAN2.from_checkpoint": StyleGAN2.from_checkpoint, "FaceTuneGAN.from_checkpoint": FaceTuneGAN.from_checkpoint,
        "DFR.from_checkpoint": DFR.from_checkpoint, "StyleRig.from_checkpoint": StyleRig.from_checkpoint,
        "StyleRig dfr_path": read_dfr_checkpoint, "DFR/StyleRig generator_path": load_frozen_generator,
        "landmark_model_path": load_landmark_model, "face regressor file": load_face_regressor,
        "macaque recipe stage": load_G,
        "FID inception_weights_path": lambda p: FidKid(inception_weights_path=p),
        "LPIPS weights": lambda p: LPIPS(vgg16_path=p, lpips_path=p),
    }


@pytest.mark.parametrize("suffix", FORMATS)
def test_every_loader_refuses_a_crafted_file(tmp_path, suffix):
    path, marker = crafted(tmp_path, suffix)
    for name, loader in _loaders().items():
        try:
            refused(loader, path, marker)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None


def test_clip_weights_are_read_through_the_policy(tmp_path):
    from facegen.editing.subspace.text_anchors import load_clip

    for suffix in FORMATS:
        path, marker = crafted(tmp_path, suffix)
        refused(lambda p: load_clip("ViT-B-32", p), path, marker)


def test_a_direction_file_with_pickled_objects_is_refused(tmp_path):
    from facegen.editing.subspace import load_direction

    marker = tmp_path / "pwned_npz"
    path = tmp_path / "evil.npz"
    np.savez(path, dv=np.array([Exploit(marker)], dtype=object))
    refused(load_direction, path, marker)


def _cfg(config: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name=config, overrides=overrides)


@pytest.mark.parametrize("suffix", FORMATS)
def test_training_resume_refuses_a_crafted_checkpoint(tmp_path, suffix):
    from facegen.runner import train

    path, marker = crafted(tmp_path, suffix)
    cfg = _cfg("train", ["model=facetunegan", "logger=none", "callbacks=none", "trainer.max_epochs=1", "run_name=test",
                         "data.n_identities=6", "data.test_fraction=0.34", "data.samples_per_expression=1",
                         "model.generator.channels=[4,4,4,4]", "model.generator.style_channels=[4,4,4,4]",
                         "model.discriminator.channels=[4,4,4,4]", "evaluate_after_fit=false",
                         f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}",
                         f"ckpt_path={path}"])
    refused(lambda p: train(cfg), path, marker)


@pytest.mark.parametrize("entry, suffix, args", [
    ("facegen.evaluate", ".ckpt", ["logger=none"]),
    ("facegen.generate", ".pkl", ["seeds=0", "out={out}"]),
    ("facegen.project", ".pt", ["target={photo}", "out={out}"]),
    ("facegen.micromotion", ".pkl", ["anchors=file", "anchors_file={photo}", "out={out}"]),
    ("facegen.train", ".ckpt", ["model=stylegan2", "logger=none", "trainer.max_epochs=1", "paths.cache_dir={cache}"]),
])
def test_entry_points_refuse_a_crafted_file_from_the_command_line(tmp_path, entry, suffix, args):
    path, marker = crafted(tmp_path, suffix)
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"")  # never read: the checkpoint is refused first
    command = [sys.executable, "-m", entry, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'run'}",
               *[a.format(photo=photo, out=tmp_path / "out", cache=tmp_path / "cache") for a in args]]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"})
    assert result.returncode != 0
    assert not marker.exists(), f"{entry} ran the payload of {path.name}"
    assert path.name in result.stderr + result.stdout and ("refused" in result.stderr + result.stdout)
