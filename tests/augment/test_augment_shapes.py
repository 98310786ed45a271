"""Shape checks of facegen.augment's entry points: facegen.shapes wording, KeypointFileError / SelectionError."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.augment import (
    DrivingMotion,
    KeypointFileError,
    SelectionError,
    faceworld_driving,
    invert_pool,
    retarget,
    select_subset,
    tps_warp,
    video_driving,
)
from facegen.errors import ProjectionInputError, ShapeError


def test_retarget_wants_2d_keypoints():
    driving = faceworld_driving(["blink"], 2)
    with pytest.raises(KeypointFileError, match=r"^keypoints: expected shape \[K, 2\], got \[68, 3\]"):
        retarget(driving, np.zeros((68, 3)))
    with pytest.raises(KeypointFileError, match=r"^retarget: keypoints contain NaN or inf"):
        retarget(driving, np.full((68, 2), np.nan))


def test_driving_motion_shapes(tmp_path):
    with pytest.raises(KeypointFileError, match=r"^clip: neutral: expected shape \[5, 2\], got \[4, 2\]"):
        DrivingMotion(np.zeros((3, 5, 2)), np.zeros((4, 2)), {}, source="clip")
    np.save(tmp_path / "lm.npy", np.zeros((4, 5, 3)))
    with pytest.raises(KeypointFileError, match=r"lm.npy: landmark trajectories: expected shape \[T, K, 2\], "
                                                r"got \[4, 5, 3\]"):
        video_driving(tmp_path / "lm.npy")
    np.save(tmp_path / "one.npy", np.zeros((1, 5, 2)))
    with pytest.raises(KeypointFileError, match=r"one.npy: landmark trajectories have 1 frame"):
        video_driving(tmp_path / "one.npy")


def test_tps_warp_shapes():
    kp = torch.rand(2, 6, 2) * 20
    with pytest.raises(ShapeError, match=r"^image: expected shape \[B, C, H, W\], got \[3, 32, 32\]"):
        tps_warp(torch.zeros(3, 32, 32), kp, kp)
    with pytest.raises(ShapeError, match=r"^src_kp: expected shape \[1, K, 2\], got \[2, 6, 2\]"):
        tps_warp(torch.zeros(1, 3, 32, 32), kp, kp)


def test_selection_shapes():
    with pytest.raises(SelectionError, match=r"^latents: expected shape \[N, D\], got \[5\]"):
        select_subset(np.zeros(5), 2)
    with pytest.raises(SelectionError, match=r"^latents: no latents \(N = 0\)"):
        select_subset(np.zeros((0, 4)), 1)
    with pytest.raises(ProjectionInputError, match=r"^images: expected shape \[N, C, H, W\], got \[3, 8, 8\]"):
        invert_pool(None, torch.zeros(3, 8, 8))
