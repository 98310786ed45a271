"""The command line of the entry points: Lightning-CLI-style flags beside Hydra overrides, ``--print_config``,
``--help``, did-you-mean for options and keys, and failed starts that leave nothing behind."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from facegen.config.cli import check_group_choices, prepare, resolved_config, translate
from facegen.errors import ConfigError

ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
ENTRY_POINTS = ("train", "evaluate", "generate", "project", "synth", "micromotion", "augment", "align")


def hydra_form(config_name: str, argv: list[str]) -> dict:
    """The resolved config of a command line (one run folder for both forms: its time stamp moves)."""
    flags, overrides, _ = translate(config_name, [*argv, "hydra.run.dir=/tmp/facegen_cli_test"])
    return OmegaConf.to_container(resolved_config(config_name, overrides))


def test_lightning_flags_give_the_hydra_config():
    cli = hydra_form("train", ["--model", "facetunegan", "--trainer.max_epochs", "3", "--trainer.devices=2",
                               "--model.loss.lambda_rec", "2.0", "--data.batch_size", "16", "--seed=4"])
    hydra = hydra_form("train", ["model=facetunegan", "trainer.max_epochs=3", "trainer.devices=2",
                                 "model.loss.lambda_rec=2.0", "data.batch_size=16", "seed=4"])
    assert cli == hydra
    assert cli["trainer"]["max_epochs"] == 3 and cli["trainer"]["devices"] == 2 and cli["data"]["batch_size"] == 16


def test_a_flag_may_add_an_argument_of_a_built_node():
    # LightningCLI accepts every Trainer argument; the config lists only some: the flag adds it (++), the
    # schema then checks it against the Trainer's signature
    _, overrides, _ = translate("train", ["--trainer.limit_train_batches", "3", "--trainer.max_epochs", "2"])
    assert overrides == ["++trainer.limit_train_batches=3", "trainer.max_epochs=2"]
    assert hydra_form("train", ["--trainer.limit_train_batches", "3"]) == \
        hydra_form("train", ["+trainer.limit_train_batches=3"])
    with pytest.raises(ConfigError, match="--trainer.max_epochs: needs a value"):
        translate("train", ["--trainer.max_epochs"])


def test_hydra_flags_pass_through():
    flags, overrides, modes = translate("train", ["-m", "seed=1,2", "--cfg", "job"])
    assert flags == ["-m", "--cfg", "job"] and overrides == ["seed=1,2"] and modes["hydra_mode"]


# a key of each entry point's config, set with a Lightning-style flag
KEYS = {"train": ("seed", 3), "evaluate": ("split", "val"), "generate": ("truncation_psi", 0.5),
        "project": ("latent_space", "w_plus"), "synth": ("n", 7), "micromotion": ("anchors", "text"),
        "augment": ("resolution", 32), "align": ("resolution", 128)}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_print_config_of_every_entry_point(name, capsys):
    key, value = KEYS[name]
    with pytest.raises(SystemExit) as info:
        prepare(name, ["--print_config", f"--{key}", str(value)])
    assert info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed[key] == value and "hydra" not in printed


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_lists_groups_with_descriptions_and_keys_with_units(name, capsys):
    with pytest.raises(SystemExit) as info:
        prepare(name, ["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert f"python -m facegen.{name}" in text and "--print_config" in text
    if name == "train":
        assert "model" in text and "* facetunegan" in text and "FaceTuneGAN (Olivier et al. 2023)" in text
        assert "stylegan2" in text and "StyleGAN2-ADA" in text      # every option with its first comment line
        assert "trainer.max_steps" in text and "optimiser steps" in text  # keys with meaning and units
        assert "trainer.max_time" in text and "data.batch_size" in text


def test_misspelt_group_option_and_key_get_a_did_you_mean(capsys):
    with pytest.raises(ConfigError, match=r"model=facetunegna: no such option; did you mean 'facetunegan'\?"):
        check_group_choices(["model=facetunegna"])
    with pytest.raises(SystemExit) as info:
        prepare("train", ["trainer.max_epoch=3"])
    assert info.value.code == 2
    assert "trainer.max_epoch: unknown key; did you mean 'max_epochs'?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prepare("train", ["trainer.limit_train_batchs=3"])   # not in the YAML: the Trainer's arguments count
    assert "did you mean 'limit_train_batches'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prepare("generate", ["sedds=0-3"])
    assert "did you mean 'seeds'" in capsys.readouterr().err


def run(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                            timeout=300)
    return result, time.perf_counter() - start


def test_done_when_print_config_through_the_real_entry_point(tmp_path):
    result, _ = run(["facegen.train", "model=facetunegan", "--trainer.max_epochs", "1", "--print_config"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert yaml.safe_load(result.stdout)["trainer"]["max_epochs"] == 1
    assert not (tmp_path / "runs").exists()


def test_done_when_a_bad_value_fails_fast_and_leaves_no_run_folder(tmp_path):
    result, seconds = run(["facegen.train", "model=facetunegan", "trainer.max_epochs=abc"], tmp_path)
    assert result.returncode != 0
    assert "trainer.max_epochs: expected int or null, got 'abc'" in result.stderr
    assert not (tmp_path / "runs").exists(), list((tmp_path / "runs").rglob("*"))
    assert seconds < 120  # imports dominate; nothing is built (measured 6-20 s on a loaded 2-core machine)


def test_a_missing_data_root_leaves_no_run_folder(tmp_path):
    result, _ = run(["facegen.train", "model=facetunegan", "data=ict", "data.root=/nonexistent", "logger=csv"],
                    tmp_path)
    assert result.returncode != 0 and "DatasetLayoutError" in result.stderr and "/nonexistent" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_an_image_as_checkpoint_is_named(tmp_path):
    image = tmp_path / "photo.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    result, _ = run(["facegen.evaluate", f"ckpt_path={image}", "logger=none"], tmp_path)
    assert result.returncode != 0
    assert "CheckpointError" in result.stderr and "photo.png" in result.stderr
    assert not (tmp_path / "runs").exists()
