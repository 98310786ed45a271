"""Face-world evaluation of micromotion transfer: metrics on hand-made frames and a small end-to-end run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from facegen.editing.subspace import MicromotionDirection, load_direction
from facegen.editing.subspace.evaluate import (
    face_world_evaluation,
    intensity,
    markdown_table,
    random_direction,
    spearman,
    transfer_metrics,
)
from facegen.models.stylegan2 import Generator

torch.set_num_threads(1)
K_EXP, K_ID = 5, 3
PRESET = torch.tensor([0.0, 2.0, 0.0, 0.0, 0.0])


class FakeRegressor(nn.Module):
    """``exp = mean brightness * PRESET / 2 + green-minus-red * e_0``; ``id`` = per-channel means; no rotation."""

    def predict(self, images):
        b = images.mean(dim=(1, 2, 3))
        exp = b[:, None] * PRESET / 2
        exp[:, 0] = (images[:, 1] - images[:, 0]).mean(dim=(1, 2))
        return {"exp": exp, "id": images.mean(dim=(2, 3)), "rotation": torch.zeros(len(images), 3)}


def test_intensity_and_spearman():
    assert intensity(torch.tensor([[0.0, 1.0, 0, 0, 0]]), PRESET).tolist() == [0.5]
    assert spearman(np.arange(4), np.array([1.0, 2.0, 5.0, 9.0])) == pytest.approx(1.0)
    assert spearman(np.arange(4), np.array([3.0, 2.0, 1.0, 0.0])) == pytest.approx(-1.0)
    assert spearman(np.arange(4), np.ones(4)) == 0.0


def test_transfer_metrics_hand_values():
    # 3 identities (grey levels -0.5, 0, 0.5), 4 frames that brighten by 0.1 each: intensity = brightness / 2 * 2 / 2
    base = torch.tensor([-0.5, 0.0, 0.5]).view(3, 1, 1, 1, 1)
    step = 0.1 * torch.arange(4.0).view(1, 4, 1, 1, 1)
    frames = (base + step).expand(3, 4, 3, 4, 4).clone()
    m = transfer_metrics(FakeRegressor(), frames, PRESET)
    assert m["rho"] == pytest.approx(1.0) and m["frac_rho>0.9"] == 1.0
    assert m["d_intensity"] == pytest.approx(0.15)        # brightness +0.3, exp_1 = b, intensity = b / 2
    # identity (channel means) moves by 0.3 * sqrt(3); mean pairwise distance of (-.5, 0, .5) * sqrt(3) is 2/3 * sqrt(3)
    assert m["id_drift"] == pytest.approx(0.3 / (2 / 3), rel=1e-5)
    assert m["off_target"] == pytest.approx(0.0, abs=1e-6) and m["rot_drift_deg"] == 0.0
    frames[:, :, 1] += step[:, :, 0]                        # green rises: an off-target coefficient moves
    assert transfer_metrics(FakeRegressor(), frames, PRESET)["off_target"] > 0.1
    row = {"method": "rpca", "alpha": 1.0, **m}
    assert markdown_table([row]).splitlines()[2].startswith("| rpca | 1 | 1.000 | 1.000 | 0.150 |")
    # flat 4x4 frames hold no face for dlib: the identity cell says so, it is never a number
    assert np.isnan(m["id_dlib"]) and m["id_dlib_no_face"] == 3 and m["id_dlib_pairs"] == 3
    assert markdown_table([row]).splitlines()[2].endswith("| no face (3/3) |")


def test_random_direction_keeps_the_per_layer_norms():
    ref = MicromotionDirection(dv=np.array([[3.0, 4.0], [0.0, 1.0]], np.float32), layers=[0, 1])
    rnd = random_direction(ref, seed=3)
    assert np.allclose(np.linalg.norm(rnd.dv, axis=1), [5.0, 1.0]) and rnd.method == "random"


def test_face_world_evaluation_end_to_end(tmp_path):
    torch.manual_seed(0)
    G = Generator(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=128, channel_max=16).eval()

    class ExpRegressor(nn.Module):  # K_exp of the procedural face model (28), id 20
        def predict(self, images):
            b = images.mean(dim=(1, 2, 3))
            return {"exp": b[:, None].repeat(1, 28), "id": images.mean(dim=(2, 3)).repeat(1, 7)[:, :20],
                    "rotation": torch.zeros(len(images), 3)}

    rows = face_world_evaluation(G, ExpRegressor(), tmp_path, clip_frames=4, anchor_count=3, num_steps=3,
                                 warm_steps=2, w_avg_samples=100, seeds=[1, 2, 3], num_frames=3, alphas=(1.0,))
    assert [r["method"] for r in rows] == ["rpca", "pca", "two_anchor", "random"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["anchors"]["gt_intensity"] == pytest.approx([0.0, 2 / 3, 1.0])
    assert len(results["rows"][0]["rho_per_identity"]) == 3
    assert load_direction(tmp_path / "direction_rpca.npz", G).method == "rpca"
    table = (tmp_path / "table.md").read_text()
    assert table.count("| rpca |") == 1 and "Reference: the regressor on the source clip" in table
    assert (tmp_path / "grid_pca_a1.png").is_file() and (tmp_path / "anchors.png").is_file()
