"""StyleGAN2 networks, layers and ADA: shapes, hand-computed FIR cases, style space, double backward."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facegen.models.stylegan2 import Discriminator, Generator, StyleGANInputError
from facegen.models.stylegan2.ada import AdaptiveP, AugmentPipe
from facegen.nn.stylegan_layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    downsample2d,
    modulated_conv2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_G(res: int = 32, **kw) -> Generator:
    torch.manual_seed(0)
    return Generator(img_resolution=res, **{**TINY, **kw})


@pytest.mark.parametrize("res, channels", [(32, 3), (64, 1)])
def test_shapes_and_layer_names(res, channels):
    G = tiny_G(res, img_channels=channels)
    D = Discriminator(img_resolution=res, img_channels=channels, channel_base=128, channel_max=16)
    n_blocks = int(math.log2(res)) - 1
    assert G.num_ws == 2 * n_blocks
    assert len(G.synthesis.style_names) == 3 * n_blocks - 1
    assert G.synthesis.style_names[:3] == ["b4.conv1", "b4.torgb", "b8.conv0"]
    names = set(G.state_dict())
    for key in ["synthesis.b4.const", "synthesis.b8.conv0.noise_strength", "synthesis.b8.conv1.noise_const",
                "synthesis.b8.torgb.affine.weight", "mapping.fc0.weight", "mapping.w_avg"]:
        assert key in names
    assert {"b4.conv.weight", "b4.fc.weight", "b4.out.weight", f"b{res}.fromrgb.weight", f"b{res}.skip.weight"} <= set(
        D.state_dict())
    img = G(torch.randn(4, 16))
    assert img.shape == (4, channels, res, res) and torch.isfinite(img).all()
    assert D(img).shape == (4, 1)
    with pytest.raises(StyleGANInputError, match=r"z: expected shape \[B, 16\], got \[4, 15\]"):
        G(torch.randn(4, 15))
    with pytest.raises(StyleGANInputError, match=rf"images: expected shape \[B, {channels}, {res}, {res}\]"):
        D(img[:, :, :-1])
    with pytest.raises(StyleGANInputError, match=rf"ws: expected shape \[B, {G.num_ws}, 16\], got \[4, 1, 16\]"):
        G.synthesis(torch.randn(4, 1, 16))


def test_conditional_networks():
    G = tiny_G(32, c_dim=5)
    D = Discriminator(c_dim=5, img_resolution=32, channel_base=128, channel_max=16)
    c = F.one_hot(torch.arange(4), 5).float()
    assert D(G(torch.randn(4, 16), c), c).shape == (4, 1)
    with pytest.raises(StyleGANInputError, match=r"c: expected shape \[4, 5\], got None; one-hot labels"):
        G(torch.randn(4, 16))
    with pytest.raises(StyleGANInputError, match=r"c: expected shape \[4, 5\], got \[3, 5\]"):
        D(G(torch.randn(4, 16), c), c[:3])


def test_truncation_and_w_avg():
    G = tiny_G()
    z = torch.randn(3, 16)
    G.eval()
    G.mapping(z, None)
    assert torch.count_nonzero(G.mapping.w_avg) == 0  # eval mode: not updated
    G.train()
    ws = G.mapping(z, None)
    expected = ws[:, 0].detach().mean(0) * (1 - 0.995)
    torch.testing.assert_close(G.mapping.w_avg, expected)
    G.eval()
    ws0 = G.mapping(z, None, truncation_psi=0.0)
    torch.testing.assert_close(ws0, G.mapping.w_avg.expand(3, G.num_ws, 16))
    cut = G.mapping(z, None, truncation_psi=0.0, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], ws0[:, :2])
    torch.testing.assert_close(cut[:, 2:], G.mapping(z, None)[:, 2:])


def test_style_space_round_trip():
    G = tiny_G().eval()
    ws = G.mapping(torch.randn(2, 16), None)
    styles = G.synthesis.w_to_s(ws)
    assert [s.shape[1] for s in styles[:3]] == [16, 16, 16]
    torch.testing.assert_close(G.synthesis.forward_s(styles), G.synthesis(ws))
    shifted = list(styles)
    shifted[4] = shifted[4] + 1.0  # b8.torgb
    assert not torch.allclose(G.synthesis.forward_s(shifted), G.synthesis(ws))
    with pytest.raises(StyleGANInputError, match="style codes"):
        G.synthesis.forward_s(styles[:-1])
    # const noise is deterministic, random noise is not (once noise_strength != 0)
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(0.5)
    torch.testing.assert_close(G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const"))
    assert not torch.allclose(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random"))


def test_upfirdn2d_hand_computed():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]
    box = setup_filter([1, 1])  # [[.25, .25], [.25, .25]]
    expected = torch.tensor([[0.25, 0.75, 0.5], [1.0, 2.5, 1.5], [0.75, 1.75, 1.0]])[None, None]
    torch.testing.assert_close(upfirdn2d(x, box, padding=1), expected)
    # true convolution (not correlation): a delta at index 1 convolved with [1, 2] gives [0, 1, 2, 0]
    delta = torch.tensor([0.0, 1.0, 0.0, 0.0])[None, None, None]
    out = upfirdn2d(delta, torch.tensor([[1.0, 2.0]]), padding=[1, 0, 0, 0])
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.0, 1.0, 2.0, 0.0]))
    # box filter: upsampling = nearest neighbour, downsampling = 2x2 average
    torch.testing.assert_close(upsample2d(x, box), x.repeat_interleave(2, 2).repeat_interleave(2, 3))
    y = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(downsample2d(y, box), F.avg_pool2d(y, 2))
    f = setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    assert upsample2d(y, f).shape == (1, 2, 12, 12) and downsample2d(y, f).shape == (1, 2, 3, 3)


def test_equalised_learning_rate():
    torch.manual_seed(0)
    fc = FullyConnectedLayer(400, 300, lr_multiplier=0.01, bias_init=1.0)
    assert abs(fc.weight.std().item() - 100.0) < 2.0  # stored N(0, 1) / lr_multiplier
    x = torch.randn(5, 400)
    torch.testing.assert_close(fc(x), F.linear(x, fc.weight * 0.01 / 20.0, fc.bias * 0.01))
    assert fc(x).std().item() == pytest.approx(1.0, abs=0.1)  # unit-variance outputs at any lr_multiplier
    conv = Conv2dLayer(8, 4, 3, activation="lrelu")
    x = torch.randn(2, 8, 5, 5)
    ref = F.leaky_relu(F.conv2d(x, conv.weight / math.sqrt(8 * 9), conv.bias, padding=1), 0.2) * math.sqrt(2)
    torch.testing.assert_close(conv(x), ref)


def test_modulated_conv_equals_per_sample_weights():
    torch.manual_seed(0)
    x, weight, styles = torch.randn(2, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.randn(2, 4)
    out = modulated_conv2d(x, weight, styles, padding=1)
    for b in range(2):
        w = weight * styles[b].reshape(1, 4, 1, 1)
        w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()  # StyleGAN2 eq. 3
        torch.testing.assert_close(out[b:b + 1], F.conv2d(x[b:b + 1], w, padding=1), atol=1e-5, rtol=1e-5)


def only(pipe: AugmentPipe, name: str) -> AugmentPipe:
    pipe.strength = dict.fromkeys(pipe.strength, 0.0)
    pipe.strength[name] = 1.0
    return pipe


def test_augment_xflip_and_brightness_are_exact():
    torch.manual_seed(0)
    x = F.avg_pool2d(torch.randn(6, 3, 36, 36), 5, stride=1)  # smooth 32x32 images
    flipped = only(AugmentPipe(p=1.0), "xflip")(x)
    kept = 0
    for b in range(6):
        if (flipped[b] - x[b]).abs().max() < 1e-5:  # up/down-sampling with sym6 reconstructs exactly
            kept += 1
        else:  # the asymmetric sym6 filter makes a flip slightly inexact, as in NVlabs
            distance = (x[b] - x[b].flip(-1)).abs().mean()
            assert (flipped[b] - x[b].flip(-1)).abs().mean() < 0.1 * distance
    assert 0 < kept < 6
    bright = only(AugmentPipe(p=1.0), "brightness")(x)
    offset = (bright - x).flatten(1)
    torch.testing.assert_close(offset, offset[:, :1].expand_as(offset))
    assert torch.equal(AugmentPipe(p=0.0)(x), x)
    out = AugmentPipe(p=1.0)(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert only(AugmentPipe(p=1.0), "saturation")(x[:, :1]).shape == (6, 1, 32, 32)


def test_augment_double_backward():
    pipe = AugmentPipe(p=1.0)
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)

    def augment(images):
        torch.manual_seed(3)
        return pipe(images)

    assert torch.autograd.gradgradcheck(augment, (x,), fast_mode=True)
    D = Discriminator(img_resolution=32, channel_base=128, channel_max=16)
    real = torch.randn(4, 3, 32, 32, requires_grad=True)
    logits = D(pipe(real))
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    grad.square().sum().backward()
    assert D.b32.conv0.weight.grad.abs().sum() > 0


def test_ada_p_moves_toward_target():
    pipe = AugmentPipe(p=0.5)
    ada = AdaptiveP(pipe, target=0.6, interval=4, ada_kimg=1.0)
    step = 8 * 4 / 1000
    for _ in range(4):  # D overfits: all real logits positive, r_t = 1 > 0.6
        ada.accumulate(torch.ones(8, 1))
    assert ada.adjust(8) == 1.0
    assert float(pipe.p) == pytest.approx(0.5 + step)
    ada.accumulate(torch.tensor([[1.0], [-1.0], [-1.0], [-1.0]]))  # r_t = -0.5 < 0.6
    ada.adjust(8)
    assert float(pipe.p) == pytest.approx(0.5)
    pipe.p.fill_(0.01)
    ada.accumulate(-torch.ones(8, 1))
    ada.adjust(8)
    assert float(pipe.p) == 0.0  # clamped


def test_mixed_precision_blocks():
    """Under autocast only the num_fp16_res highest resolutions run in the low-precision dtype."""
    G = tiny_G(32, num_fp16_res=1, conv_clamp=256).eval()
    D = Discriminator(img_resolution=32, channel_base=128, channel_max=16, num_fp16_res=1, conv_clamp=256)
    assert [b.use_fp16 for b in G.synthesis.blocks()] == [False, False, False, True]  # 4, 8, 16 | 32
    dtypes = {}
    for name in ["b16", "b32"]:
        layer = getattr(G.synthesis, name).conv1
        layer.register_forward_hook(lambda m, i, o, name=name: dtypes.update({name: o.dtype}))
    z = torch.randn(4, 16)
    reference = G(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = G(z)
        logits = D(mixed)
    assert dtypes == {"b16": torch.float32, "b32": torch.bfloat16}
    assert mixed.dtype == torch.float32 and logits.dtype == torch.float32
    assert (mixed - reference).abs().mean() < 0.05 * reference.abs().mean()


def test_channels_last_is_the_same_network_in_another_memory_layout():
    """``channels_last=True`` (the CPU-fast layout) computes the same images and logits from the same state dict."""
    torch.manual_seed(0)
    kwargs = dict(img_resolution=32, channel_base=256, channel_max=32)
    G, G_cl = Generator(z_dim=16, w_dim=16, mapping_layers=2, **kwargs), Generator(
        z_dim=16, w_dim=16, mapping_layers=2, channels_last=True, **kwargs)
    D, D_cl = Discriminator(**kwargs), Discriminator(channels_last=True, **kwargs)
    G_cl.load_state_dict(G.state_dict())
    D_cl.load_state_dict(D.state_dict())
    assert G_cl.synthesis.b8.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    z = torch.randn(3, 16)
    with torch.no_grad():
        images, images_cl = G(z), G_cl(z)
        torch.testing.assert_close(images_cl, images, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(D_cl(images), D(images), rtol=1e-4, atol=1e-5)
