"""The pair bank of FaceTuneGAN's paired translation loss (``model.loss.lambda_pair``; not in the paper).

For a content mesh ``x`` of identity ``c`` and a style source ``s`` with expression label ``e``, the paired
target is a training mesh of ``(c, e)``: the eq. (14) protocol used as a training signal. The bank holds the
train split's meshes (normalised) and a padded ``(identity, expression) -> rows`` table, so that a batch's
targets are one gather.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from facegen.errors import FacegenError
from facegen.shapes import assert_shape

PairBank = dict[str, torch.Tensor]


def pair_bank(collection, normalise: Callable[[torch.Tensor], torch.Tensor], num_styles: int,
              device: torch.device | str = "cpu") -> PairBank:
    """Normalised meshes of ``collection`` and a padded ``(identity, expression) -> rows`` table.

    Args:
        collection: a :class:`~facegen.data.meshes.MeshCollection` (mm), normally the train split.
        normalise: ``[N, V, 3]`` mm -> normalised coordinates (the module's ``normalise``).
        num_styles: expression classes of the model (the table has at least that many columns).
        device: where the bank's tensors live (the module's device).
    Returns:
        ``vertices [N, V, 3]`` (normalised), ``rows [I, S, K]`` int64 (row indices into ``vertices``, padded
        with 0) and ``counts [I, S]`` int64 (rows per pair; 0 = missing).
    Raises:
        FacegenError: the collection's vertices are not ``[N, V, 3]``.
    """
    assert_shape(collection.vertices, ["N", "V", 3], "pair bank collection.vertices", error=FacegenError)
    identity = np.asarray(collection.identity, dtype=np.int64)
    expression = np.asarray(collection.expression, dtype=np.int64)
    n_id, n_exp = int(identity.max(initial=-1)) + 1, max(int(expression.max(initial=-1)) + 1, num_styles)
    groups: dict[tuple[int, int], list[int]] = {}
    for row, key in enumerate(zip(identity.tolist(), expression.tolist())):
        groups.setdefault(key, []).append(row)
    width = max((len(r) for r in groups.values()), default=1)
    rows = torch.zeros(n_id, n_exp, width, dtype=torch.long)
    counts = torch.zeros(n_id, n_exp, dtype=torch.long)
    for (c, e), members in groups.items():
        rows[c, e, :len(members)] = torch.as_tensor(members)
        counts[c, e] = len(members)
    vertices = normalise(torch.as_tensor(np.asarray(collection.vertices, dtype=np.float32), device=device))
    return {"vertices": vertices, "rows": rows.to(device), "counts": counts.to(device)}


def pair_targets(bank: PairBank, identity: torch.Tensor, style_label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A random bank mesh of each ``(identity, style_label)`` pair and the mask of pairs that exist.

    Args:
        bank: from :func:`pair_bank`.
        identity: ``[B]`` content identities; identities outside the bank count as missing.
        style_label: ``[B]`` expression labels of the style sources.
    Returns:
        ``targets [B, V, 3]`` (normalised; a missing pair's entry is an arbitrary mesh) and ``mask [B]`` bool.
    Raises:
        FacegenError: ``identity`` and ``style_label`` are not both ``[B]``.
    """
    assert_shape(identity, ["B"], "pair_targets identity", error=FacegenError)
    assert_shape(style_label, [identity.shape[0]], "pair_targets style_label", error=FacegenError)
    identity, style_label = identity.long(), style_label.long()
    inside = identity < bank["counts"].shape[0]
    c = torch.where(inside, identity, torch.zeros_like(identity))
    counts = bank["counts"][c, style_label] * inside
    pick = (torch.rand(identity.shape, device=identity.device) * counts.clamp(min=1)).long()
    rows = bank["rows"][c, style_label, pick]
    return bank["vertices"][rows], counts > 0
