"""SpiralConv, Pool, SpiralBlock, SpiralResBlock and AdaIN: shapes, hand-computed values, equivariance."""
from __future__ import annotations

import pytest
import torch

from facegen.errors import FacegenError
from facegen.nn import (
    AdaIN,
    Pool,
    SpiralBlock,
    SpiralConv,
    SpiralResBlock,
    instance_norm,
)


def random_spirals(num_vertices: int, seq_length: int = 9, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    spirals = torch.randint(0, num_vertices, (num_vertices, seq_length), generator=g)
    spirals[:, 0] = torch.arange(num_vertices)
    return spirals


def test_spiral_conv_shape_and_value():
    spirals = torch.tensor([[0, 1, 2], [1, 2, 0], [2, 0, 1], [3, 0, 3]])
    conv = SpiralConv(2, 5, spirals)
    x = torch.randn(4, 4, 2)
    y = conv(x)
    assert y.shape == (4, 4, 5)
    # vertex 3: concatenate features of vertices 3, 0, 3, then one linear layer
    expected = conv.layer(torch.cat([x[:, 3], x[:, 0], x[:, 3]], dim=-1))
    torch.testing.assert_close(y[:, 3], expected)


def test_spiral_conv_equivariant_to_vertex_relabelling():
    torch.manual_seed(0)
    spirals = random_spirals(30)
    conv = SpiralConv(3, 7, spirals)
    x = torch.randn(2, 30, 3)
    perm = torch.randperm(30)              # new vertex i is old vertex perm[i]
    inverse = torch.argsort(perm)
    relabelled = SpiralConv(3, 7, inverse[spirals[perm]])
    relabelled.load_state_dict(conv.state_dict())
    torch.testing.assert_close(relabelled(x[:, perm]), conv(x)[:, perm])


def test_spiral_conv_rejects_wrong_vertex_count():
    conv = SpiralConv(3, 4, random_spirals(10))
    with pytest.raises(FacegenError, match=r"SpiralConv x: expected shape \[B, 10, 3\], got \[1, 11, 3\]"):
        conv(torch.randn(1, 11, 3))
    with pytest.raises(FacegenError, match=r"SpiralConv spiral_indices: expected shape \[V, L\], got \[10\]"):
        SpiralConv(3, 4, torch.arange(10))
    with pytest.raises(FacegenError, match=r"Pool x: expected shape \[B, 4, C\], got \[3, 5, 6\]"):
        Pool(torch.eye(4)[:2].to_sparse())(torch.randn(3, 5, 6))


def test_pool_equals_dense_matmul():
    dense = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.2, 0.0, 0.3, 0.5]])
    pool = Pool(dense.to_sparse())
    x = torch.randn(3, 4, 6)
    torch.testing.assert_close(pool(x), dense @ x)
    assert pool(x.double()).dtype == torch.float64


def test_adain_formula():
    x = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]]])   # [B=1, V=3, C=2]
    gamma, beta = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.5, 3.0]])
    out = AdaIN(2, eps=0.0)(x, gamma, beta)
    # channel 0: mean 3, biased std sqrt(8/3); channel 1: mean 6, std sqrt(32/3)
    z0 = (torch.tensor([1.0, 3.0, 5.0]) - 3.0) / (8.0 / 3.0) ** 0.5
    z1 = (torch.tensor([2.0, 6.0, 10.0]) - 6.0) / (32.0 / 3.0) ** 0.5
    torch.testing.assert_close(out[0, :, 0], 2.0 * z0 + 0.5)
    torch.testing.assert_close(out[0, :, 1], -1.0 * z1 + 3.0)
    torch.testing.assert_close(instance_norm(x, eps=0.0)[0, :, 0], z0)
    with pytest.raises(FacegenError, match=r"AdaIN gamma: expected shape \[1, 2\], got \[1, 1\]"):
        AdaIN(2)(x, gamma[:, :1], beta)


def test_spiral_blocks_pool_and_adain_params():
    fine, coarse = random_spirals(12), random_spirals(4, seed=1)
    down = torch.zeros(4, 12)
    down[torch.arange(4), torch.tensor([0, 3, 6, 9])] = 1.0
    up = torch.full((12, 4), 0.25)
    block_down = SpiralBlock(3, 8, fine, "instance", down_transform=down)
    block_up = SpiralBlock(8, 5, fine, "adain", up_transform=up)
    res = SpiralResBlock(8, coarse, "adain")
    x = torch.randn(2, 12, 3)
    h = block_down(x)
    assert h.shape == (2, 4, 8) and block_down.num_adain_params == 0
    assert res.num_adain_params == 32 and block_up.num_adain_params == 10
    h = res(h, torch.randn(2, 32))
    assert block_up(h, torch.randn(2, 10)).shape == (2, 12, 5)
    with pytest.raises(FacegenError, match="adain_params: an AdaIN block needs"):
        block_up(h)
    with pytest.raises(FacegenError, match=r"adain_params: expected shape \[2, 10\], got \[2, 9\]"):
        block_up(h, torch.randn(2, 9))
    with pytest.raises(FacegenError, match=r"SpiralResBlock adain_params: expected shape \[2, 32\]"):
        res(torch.randn(2, 4, 8), torch.randn(2, 30))
    with pytest.raises(FacegenError, match="unknown norm"):
        SpiralBlock(3, 8, fine, "batch")
