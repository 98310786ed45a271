"""The face parameter vector shared by rendering, fitting, synthetic data and StyleRig.

``p [B, P]`` = identity ``n_id`` | expression ``n_exp`` | albedo ``n_alb`` | 27 ``sh_coeffs`` |
rotation 3 (radians, XYZ Euler) | translation 3 (mm), the layout of Deep3DFaceRecon
(Deng et al. 2019, ``models/bfm.py`` ``split_coeff``) with the parts reordered as in StyleRig
(Tewari et al. 2020, sec. 3: identity, expression, albedo, illumination, pose).
``sh_coeffs`` are 9 second-order SH bands per colour, laid out ``reshape(B, 3, 9)`` (R, then G,
then B), as offsets from the renderer's ambient light (:data:`facegen.render.shading.SH_AMBIENT`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from facegen.morphable.base import ModelLayoutError
from facegen.shapes import assert_shape

PARTS = ("identity", "expression", "albedo", "sh_coeffs", "rotation", "translation")
N_SH = 27


@dataclass(frozen=True)
class ParamLayout:
    """Sizes and slices of the parameter vector for a model with ``n_id``, ``n_exp``, ``n_alb`` coefficients."""

    n_id: int
    n_exp: int
    n_alb: int

    @classmethod
    def from_model(cls, model) -> ParamLayout:
        """The layout of a :class:`~facegen.morphable.base.MorphableModel`."""
        return cls(model.n_id, model.n_exp, model.n_alb)

    @property
    def sizes(self) -> dict[str, int]:
        return {"identity": self.n_id, "expression": self.n_exp, "albedo": self.n_alb, "sh_coeffs": N_SH,
                "rotation": 3, "translation": 3}

    @property
    def dim(self) -> int:
        """Length ``P`` of the parameter vector."""
        return sum(self.sizes.values())

    @property
    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, size in self.sizes.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    identity = property(lambda self: self.slices["identity"])
    expression = property(lambda self: self.slices["expression"])
    albedo = property(lambda self: self.slices["albedo"])
    sh_coeffs = property(lambda self: self.slices["sh_coeffs"])
    rotation = property(lambda self: self.slices["rotation"])
    translation = property(lambda self: self.slices["translation"])

    def split(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """``p [B, P]`` -> dict of the parts (views), keys :data:`PARTS`, each ``[B, size]``.

        Raises ModelLayoutError when ``p`` is not ``[B, dim]``.
        """
        assert_shape(p, ["B", self.dim], "p", error=ModelLayoutError,
                     hint="the parameter vector " + " + ".join(f"{k} {v}" for k, v in self.sizes.items()))
        return {name: p[:, s] for name, s in self.slices.items()}

    def join(self, **parts: torch.Tensor) -> torch.Tensor:
        """Concatenate parts (keyword names from :data:`PARTS`, each ``[B, size]``) into ``p [B, P]``.

        Missing parts are zeros (mean face, neutral, mean albedo, ambient light, frontal, at the origin).
        Raises ModelLayoutError for an unknown name, a wrong size, differing batch sizes or no part at all.
        """
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise ModelLayoutError(f"unknown parameter parts {sorted(unknown)}; expected names from {PARTS}")
        if not parts:
            raise ModelLayoutError("join() needs at least one part to know the batch size")
        first, template = next(iter(parts.items()))
        assert_shape(template, ["B", self.sizes[first]], f"parts[{first!r}]", error=ModelLayoutError)
        batch = template.shape[0]
        out = []
        for name, size in self.sizes.items():
            part = parts.get(name)
            if part is None:
                part = template.new_zeros(batch, size)
            else:
                assert_shape(part, [batch, size], f"parts[{name!r}]", error=ModelLayoutError,
                             hint=f"every part has the batch size of parts[{first!r}]")
            out.append(part)
        return torch.cat(out, dim=1)


def euler_to_matrix(rotation: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from XYZ Euler angles: ``[..., 3]`` radians -> ``[..., 3, 3]``.

    ``R = R_z(rotation[..., 2]) @ R_y(rotation[..., 1]) @ R_x(rotation[..., 0])``: rotate about the
    fixed X axis (pitch) first, then Y (yaw), then Z (roll); equal to
    ``scipy.spatial.transform.Rotation.from_euler("xyz", angles).as_matrix()`` and to Deep3DFaceRecon's
    ``compute_rotation`` (which applies the transpose to row vectors). Points rotate as ``v @ R.T``.
    Raises ModelLayoutError when ``rotation`` is not ``[..., 3]``.
    """
    assert_shape(rotation, [*[None] * max(rotation.ndim - 1, 0), 3], "rotation", error=ModelLayoutError,
                 hint="XYZ Euler angles in radians")
    x, y, z = rotation.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    shape = (*rotation.shape[:-1], 3, 3)
    rot_x = torch.stack([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], -1).view(shape)
    rot_y = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], -1).view(shape)
    rot_z = torch.stack([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], -1).view(shape)
    return rot_z @ rot_y @ rot_x


@dataclass(frozen=True)
class ParamRanges:
    """Ranges for :func:`sample_params` (radians, mm, coefficient units).

    Identity and albedo: ``N(0, std)`` clipped to +-3 std. Expression: ``exp_mode="sparse"`` activates
    each control with probability ``exp_active`` at a value uniform in ``exp_range`` (blendshape rigs:
    procedural, ICT); ``"normal"`` draws ``N(0, exp_std)`` (PCA expression spaces: FLAME, BFM).
    Light: band-0 offset uniform in ``sh_ambient`` (shared by R, G, B) plus ``sh_colour`` per channel;
    bands 1-3 uniform in +-``sh_directional``, bands 4-8 in +-``sh_higher`` (same for all channels).
    Pose: pitch/yaw/roll uniform in their ranges; translation uniform per axis.
    """

    id_std: float = 1.0
    exp_mode: str = "sparse"
    exp_active: float = 0.3
    exp_range: tuple[float, float] = (0.0, 1.0)
    exp_std: float = 1.0
    alb_std: float = 1.0
    sh_ambient: tuple[float, float] = (-0.2, 0.2)
    sh_colour: float = 0.05
    sh_directional: float = 0.3
    sh_higher: float = 0.1
    pitch: tuple[float, float] = (-0.25, 0.25)
    yaw: tuple[float, float] = (-0.5, 0.5)
    roll: tuple[float, float] = (-0.15, 0.15)
    translation_x: tuple[float, float] = (-10.0, 10.0)
    translation_y: tuple[float, float] = (-10.0, 10.0)
    translation_z: tuple[float, float] = (-20.0, 20.0)


def sample_params(layout: ParamLayout, batch: int, generator: torch.Generator | None = None,
                  ranges: ParamRanges = ParamRanges()) -> torch.Tensor:
    """Random parameter vectors ``[batch, layout.dim]`` float32 within ``ranges`` (see :class:`ParamRanges`).

    Deterministic for a given ``generator`` state. Raises ModelLayoutError for an unknown ``exp_mode``.
    """
    def uniform(size, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(size, generator=generator)

    def normal(size, std: float) -> torch.Tensor:
        return (std * torch.randn(size, generator=generator)).clamp(-3.0 * std, 3.0 * std)

    if ranges.exp_mode == "sparse":
        active = torch.rand(batch, layout.n_exp, generator=generator) < ranges.exp_active
        expression = active * uniform((batch, layout.n_exp), *ranges.exp_range)
    elif ranges.exp_mode == "normal":
        expression = normal((batch, layout.n_exp), ranges.exp_std)
    else:
        raise ModelLayoutError(f"ParamRanges.exp_mode is {ranges.exp_mode!r}, expected 'sparse' or 'normal'")
    sh = torch.zeros(batch, 3, 9)
    sh[:, :, 0] = uniform((batch, 1), *ranges.sh_ambient) + uniform((batch, 3), -ranges.sh_colour, ranges.sh_colour)
    sh[:, :, 1:4] = uniform((batch, 1, 3), -ranges.sh_directional, ranges.sh_directional)
    sh[:, :, 4:] = uniform((batch, 1, 5), -ranges.sh_higher, ranges.sh_higher)
    rotation = torch.stack([uniform(batch, *ranges.pitch), uniform(batch, *ranges.yaw),
                            uniform(batch, *ranges.roll)], dim=1)
    translation = torch.stack([uniform(batch, *ranges.translation_x), uniform(batch, *ranges.translation_y),
                               uniform(batch, *ranges.translation_z)], dim=1)
    return layout.join(identity=normal((batch, layout.n_id), ranges.id_std), expression=expression,
                       albedo=normal((batch, layout.n_alb), ranges.alb_std), sh_coeffs=sh.reshape(batch, N_SH),
                       rotation=rotation, translation=translation)
