"""FID / KID wrappers: zero on identical sets, growing with a distribution shift, local weights only."""
from __future__ import annotations

import pytest
import torch

from facegen.errors import MissingWeightsError
from facegen.metrics.fid import FidKid, RandomConvFeatures, fid_kid

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance`")
KID = dict(kid_subsets=20, kid_subset_size=32)


def small_features() -> RandomConvFeatures:
    return RandomConvFeatures(num_features=128, image_size=32)


def faces(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """``[n, 3, 32, 32]`` in [-1, 1]: random blobs, blended toward a horizontal ramp by ``shift``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, 3, 1, 1) * 2
    ramp = torch.linspace(-1, 1, 32).view(1, 1, 1, 32).expand_as(x)
    return ((1 - shift) * x + shift * ramp).clamp(-1, 1)


def test_identical_sets_give_zero_and_names_say_random_features():
    real = faces(64, seed=0)
    scores = fid_kid(real, real, **KID)
    assert list(scores) == ["fid_randfeat", "kid_randfeat_mean", "kid_randfeat_std"]
    assert abs(scores["fid_randfeat"]) < 1e-3
    assert abs(scores["kid_randfeat_mean"]) < 2e-3


def test_scores_grow_with_the_shift():
    real = faces(64, seed=0)
    fids, kids = [], []
    for shift in (0.0, 0.2, 0.5, 0.8):
        scores = fid_kid(real, faces(64, seed=1, shift=shift), feature=small_features(), **KID)
        fids.append(scores["fid_randfeat"])
        kids.append(scores["kid_randfeat_mean"])
    assert fids == sorted(fids) and fids[1] > fids[0] + 1e-3, fids
    assert kids == sorted(kids) and kids[-1] > 10 * abs(kids[0]), kids


def test_streaming_updates_equal_one_shot_and_greyscale_is_accepted():
    real, fake = faces(40, seed=2), faces(40, seed=3, shift=0.3)
    metric = FidKid(feature=small_features(), **KID)
    for chunk in real.split(16):
        metric.update(chunk, real=True)
    for chunk in fake.split(7):
        metric.update(chunk, real=False)
    streamed = metric.compute()
    one_shot = fid_kid(real, fake, feature=small_features(), **KID)
    assert streamed["fid_randfeat"] == pytest.approx(one_shot["fid_randfeat"], rel=1e-4)
    grey = fid_kid(real[:, :1], fake[:, :1], feature=small_features(), **KID)
    assert grey["fid_randfeat"] > 0
    with pytest.raises(ValueError, match=r"images: expected shape \[B, 3, H, W\], got \[\d+, 2, \d+, \d+\]; or \[B, 1, H, W\]"):
        metric.update(real[:, :2], real=True)


def test_random_features_are_fixed_by_the_seed():
    x = faces(4, seed=4) * 0.5 + 0.5
    torch.testing.assert_close(RandomConvFeatures(seed=0)(x), RandomConvFeatures(seed=0)(x))
    assert not torch.allclose(RandomConvFeatures(seed=0)(x), RandomConvFeatures(seed=1)(x))
    assert RandomConvFeatures(num_features=64)(x).shape == (4, 64)


def test_missing_inception_weights_raise_one_clear_error(tmp_path):
    with pytest.raises(MissingWeightsError, match="InceptionV3 weights for FID/KID not found at .*absent.pth"):
        FidKid(inception_weights_path=tmp_path / "absent.pth")
