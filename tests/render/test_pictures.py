"""Pictures: framing, background, heat-map colours and colour bar."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from matplotlib import colormaps

from facegen.render import RenderInputError, render_heatmap, render_shaded


@pytest.fixture
def sphere():
    m = trimesh.creation.icosphere(subdivisions=3, radius=50.0)
    return np.asarray(m.vertices), np.asarray(m.faces)


def test_render_shaded_frames_the_mesh(sphere):
    img = render_shaded(*sphere, size=64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert np.all(img[0, 0] == 255) and np.all(img[-1, -1] == 255)     # background corners
    assert img[32, 32].max() < 250                                     # mesh in the centre
    covered = (img < 250).any(-1)
    rows, cols = covered.any(1).nonzero()[0], covered.any(0).nonzero()[0]
    assert rows.min() <= 6 and rows.max() >= 57 and cols.min() <= 6 and cols.max() >= 57


def test_render_heatmap_colours_and_bar(sphere):
    v, f = sphere
    values = np.where(v[:, 0] > 0, 4.0, 0.0)                            # viewer's right half at vmax
    img = render_heatmap(v, f, values, vmax=4.0, size=64)
    assert img.shape[0] == 64 and img.shape[1] > 64
    top, bottom = np.array(colormaps["viridis"](1.0)[:3]), np.array(colormaps["viridis"](0.0)[:3])
    right, left = img[32, 44] / 255.0, img[32, 20] / 255.0
    # Shading scales the colour: compare chromaticity (direction) with the colormap's ends.
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert cos(right, top) > 0.99 and cos(left, bottom) > 0.99
    bar = img[:, 64:]
    assert (bar != 255).any()                                          # colour bar and labels drawn


def test_pictures_bad_input(sphere):
    v, f = sphere
    with pytest.raises(RenderInputError, match=r"values: expected shape \[\d+\], got \[3\]"):
        render_heatmap(v, f, np.zeros(3), vmax=1.0, size=32)
    with pytest.raises(RenderInputError, match="view"):
        render_shaded(v, f, size=32, view="top")
    with pytest.raises(RenderInputError, match=r"vertices: expected shape \[V, 3\], got \[\d+, 2\]"):
        render_shaded(v[:, :2], f, size=32)
