"""facegen.generate: seed parsing, images equal G(z_seed), grids, and the Hydra command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from facegen.callbacks.image_grid import images_to_grid
from facegen.generate import GenerateConfigError, generate, parse_seeds
from facegen.models.stylegan2 import Generator
from facegen.models.stylegan2.formats import save_rosinality

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def small_generator(**kwargs) -> Generator:
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=128, channel_max=16, **kwargs)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    return G.eval()


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,5,9") == [1, 5, 9]
    assert parse_seeds("0-2, 10") == [0, 1, 2, 10]
    assert parse_seeds([4, "7-8"]) == [4, 7, 8]
    assert parse_seeds(42) == [42]
    with pytest.raises(GenerateConfigError, match="'a'"):
        parse_seeds("1,a")
    with pytest.raises(GenerateConfigError, match="ends before"):
        parse_seeds("5-2")


def test_images_are_the_generator_at_numpy_seeded_z(tmp_path):
    G = small_generator()
    save_rosinality(G, tmp_path / "g.pt")
    paths = generate(tmp_path / "g.pt", [3, 0, 11], tmp_path / "out", truncation_psi=0.7, grid_cols=2)
    assert [p.name for p in paths] == ["seed0003.png", "seed0000.png", "seed0011.png"]
    z = torch.from_numpy(np.random.RandomState(11).randn(1, 16)).float()
    with torch.no_grad():
        expected = images_to_grid(G(z, None, truncation_psi=0.7), cols=1)
    assert np.abs(iio.imread(paths[2]).astype(int) - expected).max() <= 1  # batch of 3 vs 1: float rounding
    assert iio.imread(tmp_path / "out" / "grid.png").shape == (64, 64, 3)  # 3 images, 2 columns
    with Image.open(paths[0]) as image:                                      # generator-made: never FFHQ-aligned
        assert image.info["Software"] == "facegen.generate"


def test_conditional_generator_needs_a_class(tmp_path):
    G = small_generator(c_dim=3, img_channels=1)
    torch.save({"state_dict": {f"G_ema.{k}": v for k, v in G.state_dict().items()}}, tmp_path / "last.ckpt")
    with pytest.raises(GenerateConfigError, match="class_idx"):
        generate(tmp_path / "last.ckpt", [0], tmp_path / "out")
    [path] = generate(tmp_path / "last.ckpt", [5], tmp_path / "out", class_idx=2)
    z = torch.from_numpy(np.random.RandomState(5).randn(1, 16)).float()
    with torch.no_grad():
        expected = images_to_grid(G(z, torch.tensor([[0.0, 0.0, 1.0]])), cols=1)
    assert np.abs(iio.imread(path).astype(int) - expected).max() <= 1


def test_command_line(tmp_path):
    save_rosinality(small_generator(), tmp_path / "g.pt")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "facegen.generate", f"ckpt_path={tmp_path / 'g.pt'}", "seeds=0-3",
                    "truncation_psi=0.7", f"out={tmp_path / 'out'}"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=300)
    written = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert written == ["grid.png", "seed0000.png", "seed0001.png", "seed0002.png", "seed0003.png"]
