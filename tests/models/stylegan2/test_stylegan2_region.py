"""Region loss: boxes follow landmarks, crops show the region, the option trains and is off by default."""
from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from facegen.data.keypoints import MULTIPIE_68_REGIONS, Keypoints
from facegen.errors import StyleGANInputError
from facegen.models.stylegan2 import StyleGAN2
from facegen.models.stylegan2.region import (
    RegionDiscriminators,
    crop_boxes,
    region_boxes,
)

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16)
TINY_G = {"generator": TINY}


def landmarks_at(eye_centre, mouth_centre, spread=2.0) -> np.ndarray:
    """68 points: eyes around ``eye_centre``, mouth around ``mouth_centre``, the rest at the image centre."""
    points = np.full((68, 2), 16.0)
    rng = np.random.default_rng(0)
    points[36:48] = np.asarray(eye_centre) + rng.uniform(-spread, spread, (12, 2))
    points[48:68] = np.asarray(mouth_centre) + rng.uniform(-spread, spread, (20, 2))
    return points


def test_boxes_and_crops_follow_landmarks():
    image = torch.full((1, 1, 32, 32), -1.0)
    image[..., 6:10, 20:24] = 1.0  # a bright patch at x 20..23, y 6..9
    marks = landmarks_at(eye_centre=(21.5, 7.5), mouth_centre=(10, 26))
    boxes = region_boxes(marks, ["eyes", "mouth"], resolution=32, margin=0.25, min_size=6)
    x0, y0, x1, y1 = boxes["eyes"]
    assert x0 < 21.5 < x1 and y0 < 7.5 < y1 and (x1 - x0) == pytest.approx(y1 - y0)
    crop = crop_boxes(image, torch.as_tensor(boxes["eyes"]), 8)
    assert crop.shape == (1, 1, 8, 8) and crop[..., 2:6, 2:6].mean() > 0.5  # the patch sits in the eye crop
    assert crop_boxes(image, torch.as_tensor(boxes["mouth"]), 8).max() < -0.9  # nothing bright at the mouth
    # moving the landmarks moves the box by the same amount; a file-like Keypoints at 64 px rescales
    moved = region_boxes(marks + [5, -2], ["eyes"], resolution=32, margin=0.25, min_size=6)["eyes"]
    np.testing.assert_allclose(moved - boxes["eyes"], [5, -2, 5, -2], atol=1e-4)
    kp = Keypoints({"a.png": (marks + 0.5) * 2 - 0.5}, MULTIPIE_68_REGIONS, 68, image_size=(64, 64))
    rescaled = region_boxes(kp, ["eyes"], 32, margin=0.25, min_size=6)["eyes"]
    np.testing.assert_allclose(rescaled, boxes["eyes"], atol=1e-4)
    with pytest.raises(StyleGANInputError, match="tail"):
        region_boxes(marks, ["tail"], resolution=32)


def test_region_discriminator_learns_and_passes_gradients_to_images():
    torch.manual_seed(0)
    boxes = region_boxes(landmarks_at((21.5, 7.5), (10, 26)), ["eyes"], 32, min_size=8)
    region = RegionDiscriminators(boxes, img_channels=1, crop_size=8, channel_base=64, channel_max=16)
    real = torch.full((8, 1, 32, 32), -1.0)
    real[..., 6:10, 20:24] = 1.0
    fake = torch.full((8, 1, 32, 32), -1.0, requires_grad=True)
    opt = torch.optim.Adam(region.parameters(), lr=0.01)
    losses = []
    for _ in range(10):
        loss = region.discriminator_loss(real, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.2
    grad = torch.autograd.grad(region.generator_loss(fake), fake)[0]
    x0, y0, x1, y1 = boxes["eyes"]
    inside = grad[..., int(y0):int(y1) + 2, int(x0):int(x1) + 2].abs().sum()  # bilinear: +-1 pixel
    assert inside > 0 and grad.abs().sum() == pytest.approx(float(inside), rel=1e-4)  # only the box gets gradient


def test_module_off_by_default_and_trains_with_region_loss(tmp_path):
    off = StyleGAN2(img_resolution=32, img_channels=1, **TINY_G)
    assert off.region_D is None and not any(k.startswith("region_D") for k in off.state_dict())
    torch.manual_seed(0)
    module = StyleGAN2(img_resolution=32, img_channels=1, **TINY_G,
                       region={"weight": 1.0, "regions": ["eyes", "mouth"], "crop": 8},
                       loss={"r1_interval": 2, "pl_weight": 0.0}, augment=None, grid={"every_kimg": 0})
    assert set(module.region_D.names) == {"eyes", "mouth"}
    before = module.region_D.D["eyes"].b4.out.weight.detach().clone()
    data = TensorDataset(torch.rand(8, 1, 32, 32) * 2 - 1)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=str(tmp_path), accelerator="cpu")
    trainer.fit(module, DataLoader(data, batch_size=4))
    for key in ["train/loss_G_region", "train/loss_D_region", "train/r1"]:
        assert torch.isfinite(trainer.callback_metrics[key]), key
    assert not torch.equal(before, module.region_D.D["eyes"].b4.out.weight)  # stepped by the D optimiser
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    restored = StyleGAN2.from_checkpoint(ckpt)
    torch.testing.assert_close(restored.region_D.boxes, module.region_D.boxes)


def test_region_weighted_projection_term():
    from facegen.models.stylegan2.projection import project, region_l1

    synth, target = torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    target[0, 0, 0, 0], target[1, 0, 3, 3] = 1.0, 2.0
    mask = torch.zeros(4, 4)
    mask[:2, :2] = 1  # holds target 0's difference only
    torch.testing.assert_close(region_l1(synth, target, mask), torch.tensor([0.25, 0.0]))

    from facegen.models.stylegan2 import Generator

    torch.manual_seed(0)
    G = Generator(img_resolution=16, img_channels=1, z_dim=8, w_dim=8, mapping_layers=1, channel_base=32, channel_max=8)
    targets = torch.rand(2, 1, 16, 16) * 2 - 1
    kw = dict(num_steps=2, w_avg_samples=16, seed=0)
    plain = project(G, targets, **kw).loss_curve
    weighted = project(G, targets, region_mask=torch.ones(16, 16), region_weight=1.0, **kw).loss_curve
    assert (weighted[0] > plain[0]).all()  # the same first step plus the (positive) region L1
    off = project(G, targets, region_mask=torch.ones(16, 16), region_weight=0.0, **kw).loss_curve
    torch.testing.assert_close(off, plain)
