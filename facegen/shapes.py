"""One shape check for every public entry point (after NVlabs ``torch_utils/misc.py`` ``assert_shape``).

``assert_shape(images, ["B", 3, 64, 64], "images")`` raises, in one wording everywhere::

    images: expected shape [B, 3, 64, 64], got [2, 3, 32, 32]

Entries of the expected shape: an ``int`` (that size), ``None`` or a name such as ``"B"`` (any size; a name
documents the dimension, and the same name twice must have the same size).
"""
from __future__ import annotations

from collections.abc import Sequence

from facegen.errors import ShapeError


def format_shape(shape: Sequence) -> str:
    """``[B, 3, 64, 64]``: ``None`` entries are written ``*``."""
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


def assert_shape(value, shape: Sequence[int | str | None], name: str, error: type[Exception] = ShapeError,
                 hint: str = "") -> None:
    """Check that ``value`` (a tensor or array, anything with ``.shape``) has ``shape``.

    Args:
        value: the tensor or array.
        shape: expected sizes: ``int``, ``None`` (any) or a dimension name (any, equal where repeated).
        name: what ``value`` is, as the caller's user knows it (``"images"``, ``"batch['c']"``, a file name).
        error: the exception class raised (a :class:`~facegen.errors.FacegenError` subclass of the package).
        hint: an optional sentence appended to the message (the layout expected, the unit).
    Raises:
        ``error`` (default :class:`~facegen.errors.ShapeError`): ``name: expected shape [...], got [...]``.
    """
    actual = tuple(int(s) for s in getattr(value, "shape", ()))
    ok = len(actual) == len(shape)
    named: dict[str, int] = {}
    for got, want in zip(actual, shape) if ok else ():
        if isinstance(want, str):
            ok = named.setdefault(want, got) == got
        elif want is not None:
            ok = got == int(want)
        if not ok:
            break
    if not ok:
        message = f"{name}: expected shape {format_shape(shape)}, got {format_shape(actual)}"
        raise error(f"{message}; {hint}" if hint else message)
