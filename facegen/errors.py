"""Errors raised by facegen. Each message names the file, key or shape at fault."""
from __future__ import annotations


class FacegenError(Exception):
    """Base class of facegen's own errors."""


class MeshFormatError(FacegenError, ValueError):
    """A mesh file is unreadable, corrupt (NaN/inf), or has the wrong vertex count."""


class DatasetLayoutError(FacegenError, FileNotFoundError):
    """A dataset root is missing or its folder layout is not the documented one."""


class CheckpointError(FacegenError, ValueError):
    """A checkpoint has an unknown layout or lacks required keys."""


class MissingWeightsError(FacegenError, FileNotFoundError):
    """A pretrained weights file is not configured or not found at its configured path."""


class ProjectionInputError(FacegenError, ValueError):
    """A projection target has the wrong shape, range or channel count for the generator."""


class RenderInputError(FacegenError, ValueError):
    """A tensor handed to the renderer has the wrong shape, dtype or value range."""


class StyleGANInputError(FacegenError, ValueError):
    """A latent, label, style list or image has the wrong shape, or an option is unknown."""


class ModelLayoutError(FacegenError, ValueError):
    """A morphable model's arrays have inconsistent shapes, or a coefficient tensor has the wrong shape."""


class GenerateConfigError(FacegenError, ValueError):
    """A generate option (seeds, class label) is malformed."""


class ShapeError(FacegenError, ValueError):
    """A tensor or array handed to a public function has the wrong shape (:func:`facegen.shapes.assert_shape`)."""


class ConfigError(FacegenError, ValueError):
    """A configuration value has the wrong type or range, or names an unknown key or option."""


class DivergenceError(FacegenError, RuntimeError):
    """Training produced non-finite losses or weights; the run was stopped and its last good checkpoint kept."""
