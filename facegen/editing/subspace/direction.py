"""Micromotion edit directions ``dV`` (Wu et al., CPAL 2024, sec. 3.3) and their ``.npz`` files.

``dV`` is the difference between the last and the first anchor, in motion order, of the anchors'
reconstruction from their per-layer rank-k subspace (:mod:`.decomposition`):

- ``"rpca"``: robust PCA low-rank part, then the rank-k subspace (the paper's method);
- ``"pca"``: rank-k PCA subspace of the raw anchors (ablation);
- ``"two_anchor"``: raw last minus first anchor, no decomposition (the paper's ablation, fig. 7).

The reference implementation (wuqiuche/micromotion-StyleGAN) slices its anchors with ``[:-1]`` before
taking the end points, so its "last" anchor is the second to last; here the last anchor is used.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from facegen.editing.subspace.decomposition import (
    MicromotionError,
    check_anchors,
    decompose_anchors,
)
from facegen.shapes import assert_shape
from facegen.utils import atomic_write

METHODS = ("rpca", "pca", "two_anchor")
FORMAT_VERSION = 1


def generator_sha1(G: nn.Module) -> str:
    """Identity of a generator: sha1 over its state dict (keys sorted; name, dtype, shape and bytes of each tensor)."""
    digest = hashlib.sha1()
    for name, value in sorted(G.state_dict().items()):
        array = value.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype}|{list(array.shape)}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class MicromotionDirection:
    """An edit direction in W+.

    dv: ``[num_ws, w_dim]`` float32; rows outside ``layers`` are zero.
    layers: W+ layer indices the direction acts on (sorted).
    alpha_range: ``(lo, hi)``: an edit sweeps the strength ``s = alpha * t`` from ``lo`` to ``hi``
        (``(0, 1)`` replays the anchors' motion amplitude; the paper searches alpha in [0.1, 10]).
    method: ``"rpca"``, ``"pca"`` or ``"two_anchor"``; rank: subspace rank k (0 for two_anchor).
    source: where the anchors came from (video path and frames, or the prompts).
    generator_sha1: :func:`generator_sha1` of the generator the anchors were inverted with.
    meta: further JSON-serialisable facts (lam, anchor count, ...).
    """

    dv: np.ndarray
    layers: list[int]
    alpha_range: tuple[float, float] = (0.0, 1.0)
    method: str = "rpca"
    rank: int = 4
    source: str = ""
    generator_sha1: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def num_ws(self) -> int:
        return int(self.dv.shape[0])

    def tensor(self, device: torch.device | str = "cpu") -> Tensor:
        """``dv`` as a float32 tensor ``[num_ws, w_dim]``."""
        return torch.as_tensor(self.dv, dtype=torch.float32, device=device)


def _layer_list(layers, num_ws: int) -> list[int]:
    layers = list(range(num_ws)) if layers is None else sorted({int(i) for i in layers})
    if not layers or layers[0] < 0 or layers[-1] >= num_ws:
        raise MicromotionError(f"layers {layers} must be a non-empty subset of 0..{num_ws - 1} (the W+ layers)")
    return layers


def decode_direction(anchors: np.ndarray | Tensor, method: str = "rpca", rank: int = 4, lam: float | None = None,
                     layers=None, alpha_range=(0.0, 1.0), source: str = "", generator_sha1: str = "",
                     centre: str = "median", **rpca_kwargs) -> MicromotionDirection:
    """Edit direction from anchors ``[N, num_ws, w_dim]`` of one identity in motion order.

    ``dV_l = R_l[N-1] - R_l[0]`` for every layer ``l`` in ``layers`` (all by default; zero elsewhere),
    where ``R`` is the anchors' reconstruction for ``method`` (see the module docstring); ``lam``,
    ``centre`` and ``rpca_kwargs`` go to :func:`~facegen.editing.subspace.decomposition.decompose_anchors`.

    Raises:
        MicromotionError: anchors of the wrong shape, an unknown method, or layers out of range.
    """
    A = check_anchors(anchors)
    if method not in METHODS:
        raise MicromotionError(f"direction method must be one of {METHODS}, got {method!r}")
    layers = _layer_list(layers, A.shape[1])
    meta = {"num_anchors": int(A.shape[0])}
    if method == "two_anchor":
        R, rank = A, 0
    else:
        decomposition = decompose_anchors(A, method=method, rank=rank, lam=lam, centre=centre, **rpca_kwargs)
        R = decomposition.reconstruction
        if method == "rpca":
            meta["sparse_fraction"] = float((np.abs(decomposition.sparse) > 1e-6 * np.abs(A).max()).mean())
            meta["lam"] = lam if lam is not None else "1/sqrt(max(n1, n2))"
            meta["centre"] = centre
    dv = np.zeros(A.shape[1:], np.float32)
    dv[layers] = (R[-1] - R[0])[layers]
    return MicromotionDirection(dv=dv, layers=layers, alpha_range=(float(alpha_range[0]), float(alpha_range[1])),
                                method=method, rank=int(rank), source=str(source), generator_sha1=generator_sha1,
                                meta=meta)


def save_direction(path: str | os.PathLike, direction: MicromotionDirection) -> Path:
    """Write ``direction`` to ``path`` (``.npz``, atomically).

    Keys: ``dv [num_ws, w_dim] float32``, ``layers [L] int64``, ``alpha_range [2] float64``, ``method``,
    ``source``, ``generator_sha1`` (0-d strings), ``rank`` (0-d int64), ``meta`` (JSON string),
    ``format_version``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, dv=np.asarray(direction.dv, np.float32), layers=np.asarray(direction.layers, np.int64),
             alpha_range=np.asarray(direction.alpha_range, np.float64), method=np.array(direction.method),
             rank=np.array(direction.rank, np.int64), source=np.array(direction.source),
             generator_sha1=np.array(direction.generator_sha1), meta=np.array(json.dumps(direction.meta)),
             format_version=np.array(FORMAT_VERSION, np.int64))
    atomic_write(path, buffer.getvalue())
    return path


def load_direction(path: str | os.PathLike, G: nn.Module | None = None, strict: bool = True) -> MicromotionDirection:
    """Read a direction written by :func:`save_direction`.

    Args:
        G: when given, the file's ``generator_sha1`` and ``dv`` shape are checked against it.
        strict: a generator mismatch raises (``True``) or is accepted (``False``; shapes must still fit).

    Raises:
        MicromotionError: the file is unreadable, lacks a key, has inconsistent shapes, or was made
            with another generator (``strict``).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as error:
        raise MicromotionError(f"{path}: not a readable micromotion direction .npz ({error})") from error
    missing = [k for k in ("dv", "layers", "alpha_range", "method", "rank", "source", "generator_sha1", "meta")
               if k not in arrays]
    if missing:
        raise MicromotionError(f"{path}: missing keys {missing} (expected a file of save_direction)")
    dv, layers = arrays["dv"].astype(np.float32), [int(i) for i in arrays["layers"]]
    assert_shape(dv, ["num_ws", "w_dim"], f"{path}: dv", error=MicromotionError)
    assert_shape(arrays["alpha_range"], [2], f"{path}: alpha_range", error=MicromotionError, hint="(lo, hi)")
    _layer_list(layers, dv.shape[0])
    direction = MicromotionDirection(dv=dv, layers=layers, alpha_range=tuple(float(a) for a in arrays["alpha_range"]),
                                     method=str(arrays["method"]), rank=int(arrays["rank"]),
                                     source=str(arrays["source"]), generator_sha1=str(arrays["generator_sha1"]),
                                     meta=json.loads(str(arrays["meta"])))
    if G is not None:
        assert_shape(dv, [G.num_ws, G.w_dim], f"{path}: dv", error=MicromotionError,
                     hint="the generator's [num_ws, w_dim]")
        if strict and direction.generator_sha1 and direction.generator_sha1 != generator_sha1(G):
            raise MicromotionError(f"{path}: made with generator {direction.generator_sha1[:12]}, not this one "
                                   f"({generator_sha1(G)[:12]}); pass strict=False to use it anyway")
    return direction
