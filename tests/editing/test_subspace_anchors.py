"""Video anchors: frame selection, landmark crops, warm-started W+ inversion (projection's w_init)."""
from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from facegen.editing.subspace import (
    MicromotionError,
    crop_frames,
    ffhq_quad,
    read_video,
    video_anchors,
)
from facegen.editing.subspace.anchors import (
    frames_to_targets,
    load_anchors_w_plus,
    save_anchors,
)
from facegen.models.stylegan2 import Generator
from facegen.models.stylegan2.projection import ProjectionInputError, project

torch.set_num_threads(1)
FAST = dict(w_avg_samples=200)


@pytest.fixture(scope="module")
def tiny_G():
    torch.manual_seed(0)
    return Generator(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=128, channel_max=16).eval()


def grey_video(path, n=10, size=48):
    """Frame i is a flat grey of level 20 * i (codec-safe: flat frames survive H.264)."""
    frames = np.stack([np.full((size, size, 3), 20 * i, np.uint8) for i in range(n)])
    iio.imwrite(path, list(frames), fps=5, macro_block_size=1, codec="libx264", plugin="FFMPEG")
    return frames


def test_read_video_count_and_stride(tmp_path):
    grey_video(tmp_path / "v.mp4")
    frames, index = read_video(tmp_path / "v.mp4", count=4)
    assert index.tolist() == [0, 3, 6, 9] and frames.shape == (4, 48, 48, 3)
    assert np.abs(frames[:, 24, 24, 0].astype(int) - [0, 60, 120, 180]).max() <= 3
    _, index = read_video(tmp_path / "v.mp4", count=None, stride=4, start=1)
    assert index.tolist() == [1, 5, 9]
    with pytest.raises(MicromotionError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(MicromotionError, match="cannot take 20 frames"):
        read_video(tmp_path / "v.mp4", count=20)


def upright_landmarks(cx=50.0, cy=40.0, eye=20.0):
    """68 points whose eyes are at (cx -/+ eye/2, cy) and mouth corners at (cx -/+ 8, cy + eye)."""
    lm = np.tile([cx, cy + 10.0], (68, 1))
    lm[36:42] = [cx - eye / 2, cy]
    lm[42:48] = [cx + eye / 2, cy]
    lm[48], lm[54] = [cx - 8, cy + eye], [cx + 8, cy + eye]
    return lm


def test_ffhq_quad_is_an_upright_square_around_the_face():
    quad = ffhq_quad(upright_landmarks())
    # eye-to-eye 20, eye-to-mouth 20 -> half side max(40, 36) = 40; centre = eyes + 0.1 * (0, 20) = (50, 42)
    assert np.allclose(quad, [[10, 2], [10, 82], [90, 82], [90, 2]])
    with pytest.raises(MicromotionError, match=r"landmarks: expected shape \[68, 2\], got \[5, 2\]"):
        ffhq_quad(np.zeros((5, 2)))


def test_crop_frames_landmarks_box_and_centre():
    frames = np.zeros((2, 100, 120, 3), np.uint8)
    frames[:, 2:82, 10:90] = 200  # exactly the FFHQ square of upright_landmarks()
    lm = np.stack([upright_landmarks()] * 2)
    crops = crop_frames(frames, 16, landmarks=lm)
    assert crops.shape == (2, 16, 16, 3) and crops[:, 2:14, 2:14].min() >= 190
    assert crop_frames(frames, 8, box=[10, 2, 90, 82])[:, 1:7, 1:7].min() >= 190
    assert crop_frames(frames, 8).shape == (2, 8, 8, 3)
    with pytest.raises(MicromotionError, match=r"landmarks: expected shape \[2, 68, 2\], got \[1, 68, 2\]"):
        crop_frames(frames, 8, landmarks=lm[:1])


def test_projection_w_init_is_the_starting_latent(tiny_G):
    w = torch.randn(2, tiny_G.num_ws, 16)
    target = torch.zeros(2, 3, 32, 32)
    # one step: the learning rate ramps up from 0, so the result is the start latent itself
    assert torch.equal(project(tiny_G, target, latent_space="w_plus", num_steps=1, w_init=w, **FAST).w_plus, w)
    result = project(tiny_G, target, latent_space="w", num_steps=1, w_init=w[:, 0], **FAST)
    assert torch.equal(result.w, w[:, 0])
    with pytest.raises(ProjectionInputError, match="w_init"):
        project(tiny_G, target, latent_space="w_plus", num_steps=1, w_init=w[:1], **FAST)


def test_video_anchors_warm_start_and_files(tmp_path, tiny_G):
    grey_video(tmp_path / "v.mp4", n=6, size=40)
    lines = []
    anchors = video_anchors(tiny_G, tmp_path / "v.mp4", count=3, num_steps=4, warm_steps=2, log=lines.append, **FAST)
    assert anchors.w_plus.shape == (3, tiny_G.num_ws, 16) and anchors.images.shape == (3, 3, 32, 32)
    assert anchors.frame_index.tolist() == [0, 2, 5] and len(lines) == 3 and "2 steps" in lines[1]
    assert anchors.targets.shape == (3, 3, 32, 32) and anchors.targets.min() >= -1
    save_anchors(tmp_path / "a.npz", anchors)
    assert np.array_equal(load_anchors_w_plus(tmp_path / "a.npz"), anchors.w_plus.numpy())
    cold = video_anchors(tiny_G, tmp_path / "v.mp4", count=3, num_steps=4, warm_start=False, **FAST)
    assert cold.w_plus.shape == anchors.w_plus.shape
    on_w = video_anchors(tiny_G, tmp_path / "v.mp4", count=3, num_steps=4, warm_steps=2, latent_space="w", **FAST)
    assert torch.equal(on_w.w_plus, on_w.w_plus[:, :1].expand_as(on_w.w_plus))  # one w per frame
    with pytest.raises(MicromotionError, match="w_plus"):
        load_anchors_w_plus(tmp_path / "v.mp4")


def test_frames_to_targets_range_and_grey():
    frames = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (0, 255)])
    x = frames_to_targets(frames)
    assert x.shape == (2, 3, 4, 4) and x[0].max() == -1 and x[1].min() == 1
    assert frames_to_targets(frames, channels=1).shape == (2, 1, 4, 4)
