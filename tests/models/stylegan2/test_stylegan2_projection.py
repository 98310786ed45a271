"""Projection (GAN inversion), its losses (LPIPS-VGG, L1 + MS-SSIM) and the facegen.project CLI."""
from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facegen.errors import CheckpointError, MissingWeightsError
from facegen.metrics.lpips import LPIPS, vgg16_features
from facegen.models.stylegan2 import Generator
from facegen.models.stylegan2.projection import (
    LPIPSLoss,
    PixelMSSSIMLoss,
    ProjectionInputError,
    learning_rate,
    load_targets,
    make_projection_loss,
    noise_regularization,
    project,
    save_projection,
)

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]
FAST = dict(w_avg_samples=500)


@pytest.fixture(scope="module")
def tiny_G():
    """32 px generator, channels 16-16-8-4, with visible noise; ``(G, targets [2,3,32,32], ws [2,8,16])``."""
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=128, channel_max=16).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
        ws = G.mapping(torch.randn(2, 16), None)
        targets = G.synthesis(ws, noise_mode="const").clamp(-1, 1)
    return G, targets, ws


def test_learning_rate_schedule_matches_hand_values():
    assert learning_rate(0.0) == 0.0  # ramp-up starts at zero
    assert learning_rate(0.025) == pytest.approx(0.05)  # half-way up the 5 % ramp
    assert learning_rate(0.5) == pytest.approx(0.1)
    assert learning_rate(0.875) == pytest.approx(0.05)  # (1 - 0.875) / 0.25 = 0.5 -> 0.5 - 0.5 cos(pi/2)
    assert learning_rate(0.999) < 1e-4


def test_noise_regularization_hand_values():
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1  # +-1 checkerboard
    # level 16: x- and y-neighbour products are all -1 -> 1 + 1; avg-pooled 8x8 level is all zero
    assert noise_regularization(checker[None, None]).item() == pytest.approx(2.0)
    ones = torch.ones(2, 1, 16, 16)
    assert noise_regularization(ones).tolist() == pytest.approx([4.0, 4.0])  # 2 at 16x16 + 2 at 8x8


def test_pixel_ms_ssim_loss_scales_and_zero_on_identity():
    loss = PixelMSSSIMLoss()
    assert [loss.num_scales(s) for s in (8, 16, 32, 64, 128, 256)] == [0, 2, 2, 3, 4, 5]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x).abs().max() < 1e-5
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert (loss(noisy, x) > loss((x + 0.05 * torch.randn_like(x)).clamp(-1, 1), x)).all()
    with pytest.raises(ProjectionInputError, match="too small"):
        loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_projection_lowers_the_loss_and_returns_latents(tiny_G):
    G, targets, _ = tiny_G
    before = {k: v.clone() for k, v in G.state_dict().items()}
    final = {}
    for latent_space in ("w", "w_plus"):
        result = project(G, targets, latent_space=latent_space, num_steps=40, **FAST)
        curve = result.loss_curve
        assert curve.shape == (40, 2)
        assert (curve[-5:].mean(0) < 0.85 * curve[:3].mean(0)).all(), curve[[0, -1]]
        final[latent_space] = curve[-1]
        assert result.w_plus.shape == (2, G.num_ws, 16) and result.images.shape == targets.shape
        if latent_space == "w":
            assert result.w.shape == (2, 16)
            assert torch.equal(result.w_plus, result.w[:, None].expand(-1, G.num_ws, -1))
        else:
            assert result.w is None and (result.w_plus[:, 0] - result.w_plus[:, -1]).abs().max() > 0
        for noise in result.noise.values():  # renormalised after every step
            assert noise.shape[:2] == (2, 1)
            torch.testing.assert_close(noise.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
            torch.testing.assert_close(noise.square().mean(dim=(1, 2, 3)), torch.ones(2), atol=1e-4, rtol=0)
    assert (final["w_plus"] < final["w"]).all()  # one w per layer fits better than one w
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())  # G itself untouched


def test_batched_targets_are_projected_independently(tiny_G):
    G, targets, _ = tiny_G
    other = torch.flip(targets[1:], dims=[3])
    a = project(G, targets, num_steps=8, **FAST)
    b = project(G, torch.cat([targets[:1], other]), num_steps=8, **FAST)
    torch.testing.assert_close(a.w_plus[0], b.w_plus[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.loss_curve[:, 0], b.loss_curve[:, 0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a.w_plus[1], b.w_plus[1])


def test_fixed_noise_keeps_the_generators_noise_maps(tiny_G):
    G, targets, _ = tiny_G
    result = project(G, targets, optimize_noise=False, num_steps=3, **FAST)
    for name, noise in result.noise.items():
        assert torch.equal(noise, G.synthesis.get_buffer(name).expand(2, 1, -1, -1))


def test_projection_rejects_bad_targets(tiny_G):
    G, targets, _ = tiny_G
    with pytest.raises(ProjectionInputError, match=r"targets: expected shape \[B, 3, 32, 32\], got \[2, 3, 16, 16\]"):
        project(G, targets[:, :, :16, :16], num_steps=1, **FAST)
    with pytest.raises(ProjectionInputError, match=r"\[-1, 1\]"):
        project(G, targets * 255, num_steps=1, **FAST)
    with pytest.raises(ProjectionInputError, match="latent_space"):
        project(G, targets, latent_space="s", num_steps=1, **FAST)


# ---------------------------------------------------------------------------------------------
# LPIPS-VGG


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    """Random weights in the torchvision vgg16 and LPIPS v0.1 vgg.pth layouts."""
    root = tmp_path_factory.mktemp("weights")
    g = torch.Generator().manual_seed(0)
    vgg = {f"features.{k}": torch.randn(v.shape, generator=g) * (0.1 if k.endswith("weight") else 0.01)
           for k, v in vgg16_features().state_dict().items()}
    vgg.update({"classifier.0.weight": torch.zeros(4, 4), "classifier.0.bias": torch.zeros(4)})
    lins = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
            for k, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(vgg, root / "vgg16-397923af.pth")
    torch.save(lins, root / "vgg.pth")
    return root / "vgg16-397923af.pth", root / "vgg.pth", vgg, lins


def test_lpips_matches_the_formula_on_the_first_layer(lpips_files):
    vgg_path, lin_path, vgg, lins = lpips_files
    only_first = dict(lins, **{f"lin{k}.model.1.weight": torch.zeros_like(lins[f"lin{k}.model.1.weight"])
                               for k in range(1, 5)})
    torch.save(only_first, lin_path.parent / "first.pth")
    lpips = LPIPS(vgg_path, lin_path.parent / "first.pth")
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1

    def relu1_2(img):  # ScalingLayer, conv-relu-conv-relu, unit length over channels
        shift, scale = torch.tensor([-0.030, -0.088, -0.188]), torch.tensor([0.458, 0.448, 0.450])
        h = (img - shift.view(1, 3, 1, 1)) / scale.view(1, 3, 1, 1)
        h = F.relu(F.conv2d(h, vgg["features.0.weight"], vgg["features.0.bias"], padding=1))
        h = F.relu(F.conv2d(h, vgg["features.2.weight"], vgg["features.2.bias"], padding=1))
        return h / (h.norm(dim=1, keepdim=True) + 1e-10)

    w0 = lins["lin0.model.1.weight"].view(1, -1, 1, 1)
    expected = ((relu1_2(x) - relu1_2(y)).square() * w0).sum(1).mean(dim=(1, 2))
    torch.testing.assert_close(lpips(x, y), expected, atol=1e-5, rtol=1e-4)


def test_lpips_distance_properties_and_missing_weights(lpips_files, tmp_path):
    vgg_path, lin_path, _, lins = lpips_files
    loss = make_projection_loss(vgg_path, lin_path)
    assert isinstance(loss, LPIPSLoss)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x).abs().max() < 1e-6
    torch.testing.assert_close(loss(x, y), loss(y, x))
    assert (loss(x, y) > 0).all()
    assert loss(x[:, :1], y[:, :1]).shape == (2,)  # greyscale repeated to RGB
    with pytest.raises(MissingWeightsError, match="not found at"):
        make_projection_loss(tmp_path / "absent.pth", lin_path)
    with pytest.raises(MissingWeightsError, match="lpips_path is not set"):
        make_projection_loss(vgg_path, None)
    torch.save({"lin0.weight": lins["lin0.model.1.weight"]}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="lin0.model.1.weight"):
        LPIPS(vgg_path, tmp_path / "wrong.pth")
    assert isinstance(make_projection_loss(None, None), PixelMSSSIMLoss)


def test_projection_with_lpips_loss_lowers_the_distance(tiny_G, lpips_files):
    G, targets, _ = tiny_G
    result = project(G, targets[:1], make_projection_loss(lpips_files[0], lpips_files[1]), num_steps=15, **FAST)
    assert result.loss_curve[-3:].mean() < 0.8 * result.loss_curve[:2].mean()


# ---------------------------------------------------------------------------------------------
# files and CLI


def test_save_projection_and_cli(tiny_G, tmp_path):
    from hydra import compose, initialize_config_dir

    from facegen.models.stylegan2.formats import save_rosinality
    from facegen.project import run

    G, targets, _ = tiny_G
    pictures = ((targets + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    (tmp_path / "faces").mkdir()
    for i, picture in enumerate(pictures):
        iio.imwrite(tmp_path / "faces" / f"face{i}.png", picture)
    torch.testing.assert_close(load_targets(sorted((tmp_path / "faces").iterdir()), 32, 3), targets,
                               atol=1 / 127.5, rtol=0)
    save_rosinality(G, tmp_path / "g.pt")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("project", overrides=[f"ckpt_path={tmp_path / 'g.pt'}", f"target={tmp_path / 'faces'}",
                                            f"out={tmp_path / 'out'}", "latent_space=w_plus", "batch_size=2",
                                            "schedule.num_steps=6", "schedule.w_avg_samples=300"])
    curves = run(cfg)
    assert sorted(curves) == ["face0", "face1"] and curves["face0"].shape == (6,)
    with np.load(tmp_path / "out" / "face1.npz") as npz:
        assert npz["w_plus"].shape == (1, G.num_ws, 16) and "w" not in npz
        assert npz["noise/b32.conv1.noise_const"].shape == (1, 1, 32, 32)
    assert iio.imread(tmp_path / "out" / "face0.png").shape == (32, 32, 3)
    lines = (tmp_path / "out" / "loss_curve.csv").read_text().splitlines()
    assert lines[0] == "step,face0,face1" and len(lines) == 7

    result = project(G, targets[:1], num_steps=2, **FAST)
    [path] = save_projection(result, tmp_path / "w", ["a"])
    with np.load(path) as npz:
        assert npz["w"].shape == (1, 16) and np.array_equal(npz["w_plus"][0, 3], npz["w"][0])
