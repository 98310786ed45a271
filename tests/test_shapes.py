"""The one shape check: wording, named dimensions, the error class."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.errors import ShapeError, StyleGANInputError
from facegen.shapes import assert_shape


def test_matching_shapes_pass():
    assert_shape(torch.zeros(2, 3, 8, 8), ["B", 3, None, 8], "images")
    assert_shape(np.zeros((5, 68, 2)), [5, 68, 2], "landmarks")


@pytest.mark.parametrize("value, shape, message", [
    (torch.zeros(2, 3, 32, 32), ["B", 3, 64, 64], r"images: expected shape \[B, 3, 64, 64\], got \[2, 3, 32, 32\]"),
    (torch.zeros(3, 8), ["B", 3, 8], r"images: expected shape \[B, 3, 8\], got \[3, 8\]"),
    (torch.zeros(4, 4, 3), ["N", "N", 2], r"expected shape \[N, N, 2\], got \[4, 4, 3\]"),
    (torch.zeros(4, 5, 3), ["N", "N", 3], r"got \[4, 5, 3\]"),
])
def test_wrong_shapes_are_named(value, shape, message):
    with pytest.raises(ShapeError, match=message):
        assert_shape(value, shape, "images")


def test_the_package_error_class_and_hint():
    with pytest.raises(StyleGANInputError, match=r"z: expected shape \[B, 16\], got \[2, 8\]; latents of N\(0, I\)"):
        assert_shape(torch.zeros(2, 8), ["B", 16], "z", error=StyleGANInputError, hint="latents of N(0, I)")
