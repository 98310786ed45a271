"""StyleSpace: channel scoring finds a planted eye channel; edits, mixing and saved directions."""
from __future__ import annotations

import json

import torch
from torch import nn

from facegen.editing.stylespace import (
    channel_scores,
    edit_grid,
    edit_styles,
    load_directions,
    mix_layers,
    mixing_grid,
    mixing_response,
    region_masks,
    save_directions,
)
from facegen.models.stylegan2 import Generator

R = 16


class ToySynthesis(nn.Module):
    """Linear toy synthesis: two style layers of 6 channels; image = sum_c s_c * basis_c.

    Every basis map is smooth noise over the whole image except the planted one (layer 1, channel 4),
    which is non-zero only inside the eye box (rows 3..6, cols 3..12).
    """

    style_names = ["b4.conv1", "b8.conv0", "b8.torgb"]

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.A = nn.Linear(8, 6 * 3)
        self.basis = torch.rand(3, 6, R, R, generator=g) + 0.5
        self.basis[1, 4] = 0
        self.basis[1, 4, 3:7, 3:13] = 3.0

    def w_to_s(self, ws):
        return list(self.A(ws[:, 0]).view(-1, 3, 6).unbind(1))

    def forward_s(self, styles, noise_mode="const"):
        return sum(torch.einsum("bc,chw->bhw", s, self.basis[i]) for i, s in enumerate(styles))[:, None]

    def forward(self, ws, noise_mode="const"):
        return self.forward_s(self.w_to_s(ws))


class ToyG(nn.Module):
    z_dim, w_dim, num_ws, img_resolution, img_channels = 8, 8, 2, R, 1

    def __init__(self):
        super().__init__()
        self.synthesis = ToySynthesis()

    def mapping(self, z, c=None, truncation_psi=1.0, update_w_avg=False):
        return z[:, None].repeat(1, 2, 1)


def eye_landmarks():
    points = torch.full((68, 2), 8.0)
    points[36:48, 0] = torch.linspace(4, 11, 12)
    points[36:48, 1] = 4.5
    points[48:68, 1] = 13.0
    points[48:68, 0] = torch.linspace(5, 10, 20)
    return points.numpy()


def test_channel_scoring_finds_planted_channel(tmp_path):
    G = ToyG()
    masks = region_masks(eye_landmarks(), ["eyes", "mouth"], R, margin=0.1)
    assert masks["eyes"][4, 7] == 1 and masks["eyes"][13, 7] == 0
    scores = channel_scores(G, masks, num_samples=2, std_samples=64)
    assert scores.names == ["b4.conv1", "b8.conv0"]  # toRGB skipped by default
    best = scores.top("eyes", k=3)
    assert (best[0]["layer_index"], best[0]["channel"]) == (1, 4)
    assert best[0]["score"] > 0.9 and best[1]["score"] < 0.5
    assert (scores.top("mouth", 1)[0]["layer_index"], scores.top("mouth", 1)[0]["channel"]) != (1, 4)
    path = save_directions(tmp_path / "directions.json", scores, k=2)
    assert load_directions(path)["eyes"][0]["channel"] == 4 and "area" in json.loads(path.read_text())


def test_edit_moves_only_the_planted_region():
    torch.manual_seed(0)
    G = ToyG()
    styles = G.synthesis.w_to_s(torch.randn(1, 2, 8))
    edited = edit_styles(styles, 1, 4, alpha=2.0, std=0.5)
    assert torch.equal(styles[1][:, 4] + 1.0, edited[1][:, 4]) and not torch.equal(edited[1], styles[1])
    diff = (G.synthesis.forward_s(edited) - G.synthesis.forward_s(styles)).abs()[0, 0]
    outside = torch.ones_like(diff, dtype=torch.bool)
    outside[3:7, 3:13] = False
    # exactly unchanged outside the box (comparing float sums instead depended on the summation order)
    assert diff[3:7, 3:13].min() > 0 and diff[outside].max() == 0


def test_mixing_and_grids_on_a_stylegan2(tmp_path):
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, mapping_layers=2, img_resolution=16, img_channels=1, channel_base=64,
                  channel_max=8).eval()
    ws_a, ws_b = G.mapping(torch.randn(2, 16), None), G.mapping(torch.randn(1, 16), None)
    mixed = mix_layers(ws_a, ws_b, [0, 1])
    assert torch.equal(mixed[:, 2:], ws_a[:, 2:]) and torch.equal(mixed[1, :2], ws_b[0, :2])
    masks = region_masks(eye_landmarks(), ["eyes", "mouth"], 16)
    rows = mixing_response(G, ws_a, ws_b, {"0-1": [0, 1], "2-4": [2, 3, 4]}, masks)
    assert [r["layers"] for r in rows] == ["0-1", "2-4"] and 0 <= rows[0]["eyes_share"] <= 1
    assert mixing_grid(G, ws_a, ws_b, {"0-1": [0, 1]}, tmp_path / "mix.png").is_file()
    edits = [{"layer_index": 2, "channel": 0, "std": 1.0}]
    assert edit_grid(G, ws_a, edits, [-2, 0, 2], tmp_path / "edit.png").is_file()
