"""Text anchors: StyleCLIP latent optimisation with a tiny random CLIP-shaped model; missing CLIP weights."""
from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facegen.editing.subspace.text_anchors import (
    ClipModel,
    degree_prompts,
    load_clip,
    text_anchors,
)
from facegen.errors import MissingWeightsError
from facegen.models.stylegan2 import Generator

torch.set_num_threads(1)


class TinyClip(nn.Module):
    """CLIP-shaped: ``encode_image [B, 3, 16, 16] -> [B, 8]``, ``encode_text [B, 12] tokens -> [B, 8]``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.proj = nn.Linear(8 * 8 * 8, 8)
        self.tokens = nn.Embedding(64, 8)

    def encode_image(self, x):
        return self.proj(F.gelu(self.conv(x)).flatten(1))

    def encode_text(self, tokens):
        return self.tokens(tokens).mean(dim=1)


def tokenize(prompts):
    ids = [[ord(ch) % 64 for ch in p[:12]] + [0] * (12 - len(p[:12])) for p in prompts]
    return torch.tensor(ids)


def test_degree_prompts_in_motion_order():
    assert degree_prompts("a person with {} smile", ["no", "", "50%"]) == [
        "a person with no smile", "a person with smile", "a person with 50% smile"]


def test_text_anchors_lower_the_clip_distance_near_the_source():
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=128, channel_max=16).eval()
    clip = ClipModel(model=TinyClip(), tokenizer=tokenize, image_size=16)
    w_source = G.mapping(torch.randn(1, 16), None).detach()
    prompts = degree_prompts("a {} smile", ["no", "big"])
    curve = []
    anchors = text_anchors(G, w_source, prompts, clip, num_steps=25, log=lambda step, d: curve.append(d))
    assert anchors.w_plus.shape == (2, G.num_ws, 16) and anchors.images.shape == (2, 3, 32, 32)
    with torch.no_grad():
        start = 1 - (clip.encode_images(G.synthesis(w_source)) * clip.encode_texts(prompts)).sum(-1)
    assert (anchors.final_distance < start - 1e-3).all()
    assert len(curve) == 25 and "a no smile | a big smile" in anchors.source
    # the L2 regulariser keeps the anchors near the source
    far = text_anchors(G, w_source, prompts, clip, num_steps=25, l2_lambda=0.0, id_lambda=0.0)
    assert (anchors.w_plus - w_source).norm() < (far.w_plus - w_source).norm()


def test_load_clip_says_what_is_missing(tmp_path):
    with pytest.raises(MissingWeightsError, match="clip.checkpoint_path"):
        load_clip("ViT-B-32", None)
    with pytest.raises(MissingWeightsError, match="clip.checkpoint_path"):
        load_clip("ViT-B-32", tmp_path / "absent.pt")
    if importlib.util.find_spec("open_clip") is None:
        torch.save({}, tmp_path / "w.pt")
        with pytest.raises(MissingWeightsError, match="open_clip"):
            load_clip("ViT-B-32", tmp_path / "w.pt")
