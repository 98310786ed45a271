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
