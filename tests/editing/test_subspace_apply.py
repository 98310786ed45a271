"""Applying micromotion directions: strengths, per-layer masks, frames, videos and grids."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from facegen.editing.subspace import (
    MicromotionDirection,
    MicromotionError,
    edit_latents,
    edit_strengths,
    frame_grid,
    layer_mask,
    render_edit,
    to_frames,
)
from facegen.imaging import ImagingError, write_video
from facegen.models.stylegan2 import Generator
from facegen.models.stylegan2.projection import synthesize

torch.set_num_threads(1)


def test_strengths_follow_alpha_or_the_stored_range():
    d = MicromotionDirection(dv=np.zeros((3, 4), np.float32), layers=[0, 1, 2], alpha_range=(-1.0, 3.0))
    assert edit_strengths(d, 5).tolist() == [-1.0, 0.0, 1.0, 2.0, 3.0]
    assert edit_strengths(d, 3, alpha=2.0).tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(MicromotionError, match="num_frames"):
        edit_strengths(d, 0)


def test_edit_latents_with_a_layer_mask():
    w = torch.randn(2, 3, 4)
    dv = torch.ones(3, 4)
    mask = layer_mask(3, layers=[0, 2], weights=[1.0, 5.0, 0.5])
    assert mask.tolist() == [1.0, 0.0, 0.5]
    ws = edit_latents(w, dv, torch.tensor([0.0, 2.0]), mask)
    assert ws.shape == (2, 2, 3, 4)
    assert torch.equal(ws[:, 0], w)
    assert torch.allclose(ws[:, 1] - w, torch.tensor([2.0, 0.0, 1.0])[None, :, None].expand(2, 3, 4))
    with pytest.raises(MicromotionError, match="outside 0..2"):
        layer_mask(3, layers=[3])
    with pytest.raises(MicromotionError, match=r"weights: expected shape \[3\], got \[1\]"):
        layer_mask(3, weights=[1.0])
    with pytest.raises(MicromotionError, match=r"w_plus: expected shape \[B, 3, 4\], got \[3, 4\]"):
        edit_latents(w[0], dv, torch.zeros(1))


def test_render_edit_equals_the_generator_at_the_edited_latents():
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=128, channel_max=16).eval()
    d = MicromotionDirection(dv=torch.randn(G.num_ws, 16).numpy(), layers=list(range(G.num_ws)))
    w = G.mapping(torch.randn(2, 16), None).detach()
    s = torch.tensor([0.0, 0.5, 1.0])
    frames = render_edit(G, w, d, s, batch_size=2)
    assert frames.shape == (2, 3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(frames[1, 2], G.synthesis(w[1:] + d.tensor()[None])[0], atol=1e-5)
    noise = {name: torch.randn(2, 1, *buf.shape) for name, buf in G.synthesis.named_buffers() if "noise_const" in name}
    with_noise = render_edit(G, w, d, s, noise=noise)
    with torch.no_grad():
        expected = synthesize(G, w[1:] + 0.5 * d.tensor()[None], {k: v[1:] for k, v in noise.items()})
    assert torch.allclose(with_noise[1, 1], expected[0], atol=1e-5)


def test_videos_and_grids(tmp_path):
    images = torch.linspace(-1, 1, 4).view(1, 4, 1, 1, 1).expand(2, 4, 3, 8, 8)   # [B=2, T=4, 3, 8, 8]
    frames = to_frames(images[0], scale=2)
    assert frames.shape == (4, 16, 16, 3) and frames[0].max() == 0 and frames[-1].min() == 255
    for suffix in (".mp4", ".gif"):
        path = write_video(tmp_path / f"edit{suffix}", frames, fps=4)
        back = iio.imread(path)
        assert back.shape[:3] == (4, 16, 16)
        assert np.abs(back[..., :3].astype(int).mean(axis=(1, 2, 3)) - frames.mean(axis=(1, 2, 3))).max() < 8
    assert frame_grid(images).shape == (16, 32, 3)
    assert to_frames(images[0, :, :1]).shape == (4, 8, 8, 3)  # grey -> RGB
    with pytest.raises(ImagingError, match="suffix"):
        write_video(tmp_path / "edit.avi", frames)
