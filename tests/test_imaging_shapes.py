"""Shape checks of the image services (facegen.imaging, facegen.reporting): facegen.shapes wording."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from facegen.errors import ShapeError
from facegen.imaging import ImagingError, encode_png, tile, to_uint8, write_video
from facegen.reporting import log_images


def test_imaging_shapes():
    with pytest.raises(ImagingError, match=r"^images: expected shape \[B, C, H, W\], got \[3, 8, 8\]"):
        to_uint8(torch.zeros(3, 8, 8))
    with pytest.raises(ImagingError, match=r"^pictures: expected shape \[N, H, W, C\], got \[8, 8, 3\]"):
        tile(np.zeros((8, 8, 3), np.uint8), 2)
    with pytest.raises(ImagingError, match=r"^picture: expected shape \[H, W, C\], got \[1, 8, 8, 3\]; or \[H, W\]"):
        encode_png(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ImagingError, match=r"^picture: expected dtype uint8, got float32"):
        encode_png(np.zeros((8, 8), np.float32))
    assert encode_png(np.zeros((8, 8, 1), np.uint8)).startswith(b"\x89PNG")


def test_write_video_wants_rgb_frames(tmp_path):
    with pytest.raises(ImagingError, match=r"^frames: expected shape \[T, H, W, 3\], got \[4, 3, 8, 8\]"):
        write_video(tmp_path / "v.gif", np.zeros((4, 3, 8, 8), np.uint8))
    assert not list(tmp_path.iterdir())


def test_log_images_checks_before_writing(tmp_path):
    module = SimpleNamespace(trainer=SimpleNamespace(is_global_zero=True, global_step=0, default_root_dir=tmp_path,
                                                     loggers=[]))
    with pytest.raises(ShapeError, match=r"^val/x: images\[1\]: expected shape \[H, W, 3\], got \[8, 8, 2\]"):
        log_images(module, "val/x", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 2), np.uint8)])
    assert not (tmp_path / "pictures").exists()
