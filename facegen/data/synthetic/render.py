"""How synthetic faces are sampled and pictured: render settings, random parameters, rendering with landmarks.

Faces are random parameter vectors of a morphable model (identity, expression, albedo, SH illumination, pose;
:class:`facegen.morphable.params.ParamRanges`) rendered by :class:`facegen.render.FaceRenderer` at
``supersample x`` the size and averaged down, with the 68 landmarks projected into the output image.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from facegen.errors import DatasetLayoutError
from facegen.morphable import FACESCAPE_EXPRESSIONS
from facegen.morphable.params import ParamLayout, ParamRanges, sample_params
from facegen.render import FaceRenderer, PerspectiveCamera
from facegen.shapes import assert_shape


@dataclass
class RenderSettings:
    """How faces are pictured: camera framing, anti-aliasing and background.

    ``fov_degrees``/``margin``: a perspective camera framing the model's mean face (margin > 1 leaves
    room for pose and translation); ``supersample``: render at ``supersample x`` the size and average
    down; ``background``: RGB in [0, 1]; ``batch_size``: faces rendered at once.
    """

    fov_degrees: float = 12.0
    margin: float = 1.25
    supersample: int = 2
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    batch_size: int = 32


def _dataclass_from(cls, values, label: str):
    """``cls(**values)`` from a (Hydra) mapping, sequences turned into tuples; None -> defaults.

    Raises:
        DatasetLayoutError: an unknown key (names ``label`` and the known keys).
    """
    if values is None or isinstance(values, cls):
        return values or cls()
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise DatasetLayoutError(f"unknown {label} keys {sorted(unknown)}; expected some of {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
                  for k, v in dict(values).items()})


def make_ranges(ranges: Mapping | ParamRanges | None) -> ParamRanges:
    """A :class:`ParamRanges` from a (Hydra) dict of its fields (None = defaults)."""
    return _dataclass_from(ParamRanges, ranges, "synthetic ranges")


def make_render_settings(render: Mapping | RenderSettings | None) -> RenderSettings:
    """A :class:`RenderSettings` from a (Hydra) dict of its fields (None = defaults)."""
    return _dataclass_from(RenderSettings, render, "synthetic render")


def face_renderer(model, resolution: int, settings: RenderSettings) -> FaceRenderer:
    """The :class:`FaceRenderer` used for synthetic data: ``resolution * supersample`` pixels."""
    camera = PerspectiveCamera.framing(model.mean_shape, fov_degrees=settings.fov_degrees, margin=settings.margin)
    return FaceRenderer(model, resolution * settings.supersample, camera, tuple(settings.background))


@torch.no_grad()
def render_faces(renderer: FaceRenderer, params: torch.Tensor, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Render ``params [N, P]`` -> (images uint8 ``[N, H, W, 3]``, landmarks float32 ``[N, 68, 2]`` pixels).

    ``H = renderer size / supersample``; landmarks are in the output image's pixel convention
    (centres at integers): ``u = (u_big + 0.5) / supersample - 0.5``.

    Raises:
        DatasetLayoutError: ``params`` is not ``[N, P]``.
    """
    assert_shape(params, ["N", "P"], "params", error=DatasetLayoutError)
    out = renderer(params)
    image = torch.nn.functional.avg_pool2d(out.image, supersample) if supersample > 1 else out.image
    images = (image.permute(0, 2, 3, 1) * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
    landmarks = ((out.landmarks + 0.5) / supersample - 0.5).float().cpu().numpy()
    return images, landmarks


def sample_faces(model, n: int, seed: int, ranges: ParamRanges, expressions: str = "presets",
                 strength: tuple[float, float] = (0.3, 1.0)) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Random parameter vectors with their expression label and strength.

    Args:
        model: the morphable model (``expression_presets`` needed for ``expressions="presets"``).
        n: number of faces.
        seed: seeds a ``torch.Generator``; the same seed gives the same faces.
        ranges: identity/albedo/light/pose ranges (and the expression ranges for ``"sparse"``).
        expressions: ``"presets"``: one FaceScape expression per face (uniform over the model's presets,
            neutral included) times a strength uniform in ``strength``; ``"sparse"``: ``ranges``' sparse
            random activations (label -1, strength NaN).

    Returns:
        ``(params [n, P] float32, labels [n] int64, strengths [n] float32)``.

    Raises:
        DatasetLayoutError: unknown ``expressions`` mode or a model without presets.
    """
    generator = torch.Generator().manual_seed(int(seed))
    params = sample_params(ParamLayout.from_model(model), n, generator, ranges)
    if expressions == "sparse":
        return params, np.full(n, -1, np.int64), np.full(n, np.nan, np.float32)
    presets = getattr(model, "expression_presets", None)
    if expressions != "presets" or not presets:
        raise DatasetLayoutError(f"synthetic expressions={expressions!r} needs 'presets' (a model with "
                                 f"expression_presets) or 'sparse'")
    names = [name for name in FACESCAPE_EXPRESSIONS if name in presets]
    table = torch.stack([presets[name] for name in names])                     # [E, K_exp]
    choice = torch.randint(len(names), (n,), generator=generator)
    amount = strength[0] + (strength[1] - strength[0]) * torch.rand(n, generator=generator)
    params[:, ParamLayout.from_model(model).expression] = table[choice] * amount[:, None]
    labels = np.array([FACESCAPE_EXPRESSIONS.index(names[i]) for i in choice.tolist()], np.int64)
    return params, labels, amount.numpy().astype(np.float32)
