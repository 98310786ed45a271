"""Rasteriser: analytically covered pixels, depth test, chunking, differentiable interpolation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from facegen.render import (
    OrthographicCamera,
    PerspectiveCamera,
    RenderInputError,
    interpolate,
    ndc_to_pixels,
    pixels_to_ndc,
    rasterize,
)


def _inside_numpy(tri_px: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pixel centres (integers) inside a triangle given in pixel coordinates, by half-plane tests."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    signs = []
    for i in range(3):
        (ax, ay), (bx, by) = tri_px[i], tri_px[(i + 1) % 3]
        signs.append((bx - ax) * (ys - ay) - (by - ay) * (xs - ax))
    signs = np.stack(signs)
    return (signs >= 0).all(0) | (signs <= 0).all(0)


def test_triangle_covers_expected_pixels():
    h, w = 12, 16
    tri_px = np.array([[2.3, 1.2], [13.7, 4.9], [5.1, 10.6]])
    ndc = pixels_to_ndc(torch.tensor(tri_px), (h, w))
    verts = torch.cat([ndc, torch.full((3, 1), 5.0, dtype=ndc.dtype)], 1)[None].float()
    frag = rasterize(verts, torch.tensor([[0, 1, 2]]), (h, w))
    expected = _inside_numpy(tri_px, h, w)
    assert expected.sum() > 40
    np.testing.assert_array_equal(frag.mask[0].numpy(), expected)
    torch.testing.assert_close(frag.zbuf[0][frag.mask[0]], torch.full((int(expected.sum()),), 5.0))
    assert torch.all(frag.zbuf[0][~frag.mask[0]] == -1)
    bary = frag.bary[0][frag.mask[0]]
    assert torch.all(bary >= -1e-6) and torch.allclose(bary.sum(-1), torch.ones(len(bary)))


def test_bary_reproduces_pixel_position():
    tri_px = torch.tensor([[1.0, 1.0], [9.0, 2.0], [3.0, 8.0]])
    verts = torch.cat([pixels_to_ndc(tri_px, 10), torch.ones(3, 1)], 1)[None]
    frag = rasterize(verts, torch.tensor([[0, 1, 2]]), 10)
    pos = interpolate(tri_px[None], torch.tensor([[0, 1, 2]]), frag)[0]
    ys, xs = torch.nonzero(frag.mask[0], as_tuple=True)
    torch.testing.assert_close(pos[ys, xs], torch.stack([xs, ys], 1).float())


def test_orthographic_cube_front_face_covers_square():
    box = trimesh.creation.box(extents=(20.0, 20.0, 20.0))            # mm, centred at the origin
    verts = torch.tensor(box.vertices, dtype=torch.float32)[None]
    faces = torch.tensor(box.faces)
    camera = OrthographicCamera(half_extent=20.0, distance=100.0)
    frag = rasterize(camera.transform(verts), faces, 16)
    # x, y in [-10, 10] mm -> NDC [-0.5, 0.5] -> pixel centres 4..11 in both directions.
    expected = np.zeros((16, 16), bool)
    expected[4:12, 4:12] = True
    np.testing.assert_array_equal(frag.mask[0].numpy(), expected)
    front = set(np.nonzero(box.triangles_center[:, 2] > 9.9)[0].tolist())
    assert set(frag.pix_to_face[0][frag.mask[0]].tolist()) <= front
    torch.testing.assert_close(frag.zbuf[0][frag.mask[0]], torch.full((64,), 90.0))


def test_perspective_cube_square_size():
    box = trimesh.creation.box(extents=(20.0, 20.0, 20.0))
    verts = torch.tensor(box.vertices, dtype=torch.float32)[None]
    camera = PerspectiveCamera(fov_degrees=30.0, distance=110.0)
    frag = rasterize(camera.transform(verts), torch.tensor(box.faces), 64, perspective_correct=True)
    # Front face at depth 100 mm: half-width 10 mm -> NDC f * 10 / 100.
    half_px = camera.focal * 10.0 / 100.0 * 32.0
    cols = frag.mask[0].any(0).nonzero().squeeze(1)
    assert cols.min().item() == math.ceil(32 - half_px - 0.5) and cols.max().item() == math.floor(31.5 + half_px)
    torch.testing.assert_close(frag.zbuf[0][frag.mask[0]], torch.full((int(frag.mask.sum()),), 100.0))


def test_nearer_triangle_wins_in_any_order():
    tri = torch.tensor([[-0.8, -0.8], [0.8, -0.8], [0.0, 0.8]])
    near = torch.cat([tri, torch.full((3, 1), 2.0)], 1)
    far = torch.cat([tri * 0.9, torch.full((3, 1), 3.0)], 1)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    for verts, near_face in ((torch.cat([near, far]), 0), (torch.cat([far, near]), 1)):
        frag = rasterize(verts[None], faces, 16)
        assert set(frag.pix_to_face[frag.mask].tolist()) == {near_face}


def test_batch_chunking_and_backface_culling():
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=30.0)
    verts = torch.tensor(sphere.vertices, dtype=torch.float32)[None].repeat(2, 1, 1)
    verts[1, :, 0] += 10.0
    faces = torch.tensor(sphere.faces)
    ndc = PerspectiveCamera(fov_degrees=20.0, distance=300.0).transform(verts)
    ref = rasterize(ndc, faces, 32, perspective_correct=True)
    small = rasterize(ndc, faces, 32, perspective_correct=True, max_candidates=50)
    assert torch.equal(ref.pix_to_face, small.pix_to_face)
    assert not torch.equal(ref.mask[0], ref.mask[1])
    culled = rasterize(ndc, faces, 32, perspective_correct=True, cull_backfaces=True)
    assert torch.equal(culled.mask, ref.mask)                            # the front half covers the disc
    flipped = rasterize(ndc, faces[:, [0, 2, 1]], 32, perspective_correct=True, cull_backfaces=True)
    assert not torch.equal(flipped.pix_to_face, ref.pix_to_face)         # now the far (inner) side is drawn


@pytest.mark.parametrize("perspective_correct", [False, True])
def test_gradcheck_interpolate(perspective_correct):
    torch.manual_seed(0)
    verts = torch.tensor([[[-0.7, -0.6, 3.0], [0.8, -0.5, 4.0], [0.1, 0.7, 5.0]]], dtype=torch.float64)
    attrs = torch.rand(1, 3, 2, dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])

    def render(v, a):
        frag = rasterize(v, faces, 6, perspective_correct=perspective_correct)
        return interpolate(a, faces, frag), frag.zbuf

    assert rasterize(verts, faces, 6).mask.sum() > 8
    assert torch.autograd.gradcheck(render, (verts.requires_grad_(), attrs.requires_grad_()), eps=1e-6, atol=1e-6)


def test_points_project_to_expected_pixels():
    camera = PerspectiveCamera(fov_degrees=20.0, distance=400.0)
    points = torch.tensor([[[0.0, 0.0, 0.0], [30.0, -20.0, 0.0], [-15.0, 25.0, 50.0]]])
    uv = ndc_to_pixels(camera.transform(points)[..., :2], 128)
    f_px = 64.0 / math.tan(math.radians(10.0))
    expected = torch.tensor([[63.5, 63.5], [63.5 + f_px * 30 / 400, 63.5 + f_px * 20 / 400],
                             [63.5 - f_px * 15 / 350, 63.5 - f_px * 25 / 350]])
    torch.testing.assert_close(uv[0], expected)


def test_bad_inputs_raise():
    with pytest.raises(RenderInputError, match=r"verts_ndc: expected shape \[B, V, 3\], got \[3, 3\]"):
        rasterize(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), 8)
    with pytest.raises(RenderInputError, match="outside"):
        rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 3]]), 8)
    with pytest.raises(RenderInputError, match=r"attrs: expected shape \[2, V, C\], got \[3, 3, 1\]"):
        frag = rasterize(torch.ones(2, 3, 3), torch.tensor([[0, 1, 2]]), 8)
        interpolate(torch.zeros(3, 3, 1), torch.tensor([[0, 1, 2]]), frag)
