"""Config blocks as typed dataclasses: one place that checks keys, types and ranges and names the key at fault.

A LightningModule's grouped arguments (``loss``, ``ema``, ``evaluation``, ...) are small frozen dataclasses
whose fields carry the types, defaults and units. :func:`block` turns a mapping from a config (or a
checkpoint's hyper-parameters) into one, refusing unknown keys with a "did you mean" and values of the wrong
type with ``<where>.<key>: expected <type>, got <value>``; :func:`plain` turns it back into a plain dict for the
hyper-parameters (``torch.load(weights_only=True)`` reads those). A dataclass may define ``check(self, where)``
for ranges; it runs after the type check.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf

from facegen.errors import ConfigError

T = TypeVar("T")


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` (difflib), or ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple, Sequence):
        return "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def check_value(value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to the annotation ``tp`` (int -> float, lists -> tuples for tuple fields).

    Handles ``int``, ``float``, ``bool``, ``str``, ``None``, ``Any``, unions / ``Optional``, ``Literal``,
    ``list``/``tuple``/``Sequence`` (elements checked when typed) and ``dict``/``Mapping``.

    Raises:
        ConfigError: ``<where>: expected <type>, got <value>``.
    """
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if tp is Any or tp is typing.Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    fail = ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return check_value(value, arg, where)
            except ConfigError:
                continue
        raise fail
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}{did_you_mean(value, args)}")
    if tp is type(None):
        if value is None:
            return None
        raise fail
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise fail
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
            items = [check_value(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            element = args[0] if args else Any
            items = [check_value(v, element, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else list(items)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise fail
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return block(tp, value, where)
    return value


def block(cls: type[T], value: Mapping[str, Any] | T | None, where: str) -> T:
    """A ``cls`` dataclass from ``value`` (a mapping, an instance, or ``None`` for the defaults).

    Raises:
        ConfigError: an unknown key (with a "did you mean"), a missing required key, a value of the wrong
            type, or a range error from ``cls.check``; every message names ``where.<key>``.
    """
    if isinstance(value, cls):
        return value
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {sorted(f.name for f in dataclasses.fields(cls))}, "
                          f"got {value!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key{did_you_mean(unknown[0], list(fields))} "
                          f"(known: {', '.join(fields)})")
    kwargs = {name: check_value(v, hints[name], f"{where}.{name}") for name, v in value.items()}
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}.{missing[0]}: required")
    result = cls(**kwargs)
    if hasattr(result, "check"):
        result.check(where)
    return result


def at_least(where: str, low: float, **values: float | None) -> None:
    """Range check of block fields: each of ``values`` that is not ``None`` is ``>= low``.

    Raises:
        ConfigError: ``<where>.<name>: must be >= <low>, got <value>``.
    """
    for name, value in values.items():
        if value is not None and value < low:
            raise ConfigError(f"{where}.{name}: must be >= {low}, got {value}")


def in_range(where: str, low: float, high: float, **values: float | None) -> None:
    """Range check of block fields: each of ``values`` that is not ``None`` is in ``[low, high]``.

    Raises:
        ConfigError: ``<where>.<name>: must be in [<low>, <high>], got <value>``.
    """
    for name, value in values.items():
        if value is not None and not low <= value <= high:
            raise ConfigError(f"{where}.{name}: must be in [{low}, {high}], got {value}")


def plain(value: Any) -> Any:
    """A dataclass (or nested containers of them) as plain dicts / lists, for hyper-parameters."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
