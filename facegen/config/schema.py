"""Configs checked against the signatures of what they build, before anything is built.

Every config node with a ``_target_`` (the Trainer, the datamodule, the model, each callback and logger, and
nested blocks such as ``model.generator`` or ``model.optimizer``) is checked against its target's own
signature (``inspect.signature`` of the class's ``__init__`` or of the function: annotations and defaults),
the way LightningCLI (jsonargparse) derives its schema. One source of truth: a constructor parameter added,
renamed or re-typed is checked at once, with no schema written twice (Hydra structured configs would repeat
every parameter in a dataclass of the ConfigStore). The checks:

- an unknown key: ``trainer.max_epoch: unknown key; did you mean 'max_epochs'?`` (difflib), unless the
  target takes ``**kwargs`` (then the targets named by its ``config_kwargs_targets(node)`` classmethod, when it
  has one, e.g. the mesh source of ``MeshDataModule``, supply the known keys);
- a value of the wrong type: ``trainer.max_epochs: expected int or null, got 'abc'``
  (:func:`facegen.config.blocks.check_value`); a parameter typed with a dataclass block (``loss: StyleGAN2Loss |
  Mapping``) is checked key by key with :func:`facegen.config.blocks.block` (its ``check`` gives the ranges);
- a value out of range for the common counts and fractions (:data:`RANGES`): ``data.batch_size: expected
  an int >= 1, got 0``;
- a mandatory value left unset (``???``): ``data.root: missing value (set data.root=...)``;
- an untrusted ``_target_`` (:func:`facegen.config.spec.check_target`).

Parameters without a default are not required here: data-derived arguments (``img_resolution``, the mesh
template) arrive from the datamodule when the model is built.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import PurePath
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from facegen.config.blocks import block, check_value, did_you_mean
from facegen.config.spec import check_target
from facegen.errors import ConfigError

HYDRA_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
# the config sections a training run builds, in the order they are built
RUN_SECTIONS = ("data", "model", "trainer", "callbacks", "logger")

# Ranges of the counts and fractions every target names the same way: (lowest, highest, highest included).
# Checked when the value has the right type; the constructors check the rest when they run.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "batch_size": (1, None, True),
    "num_workers": (0, None, True),
    "max_epochs": (-1, None, True),
    "min_epochs": (0, None, True),
    "max_steps": (-1, None, True),
    "min_steps": (0, None, True),
    "accumulate_grad_batches": (1, None, True),
    "check_val_every_n_epoch": (1, None, True),
    "log_every_n_steps": (1, None, True),
    "every_n_epochs": (0, None, True),
    "every_n_train_steps": (0, None, True),
    "val_fraction": (0, 1, False),
    "test_fraction": (0, 1, False),
    "lr": (0, None, True),
}


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One parameter of a target: its annotation (``Any`` when unknown) and whether it has a default."""

    annotation: Any
    has_default: bool


@dataclasses.dataclass(frozen=True)
class Signature:
    """What a target accepts: named parameters, and whether it takes ``**kwargs``."""

    target: str
    parameters: dict[str, Parameter]
    var_keyword: bool


def resolve_target(target: str, where: str) -> Callable:
    """The class or function a (trusted) dotted ``_target_`` names.

    Raises:
        ConfigError: untrusted, or it cannot be imported (names ``where`` and the target).
    """
    check_target(target, where)
    module_name, _, name = target.rpartition(".")
    try:
        obj = importlib.import_module(module_name)
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError):
        pass
    try:  # a nested attribute path (module.Class.method)
        module_name, _, owner = module_name.rpartition(".")
        return getattr(getattr(importlib.import_module(module_name), owner), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"{where}._target_={target!r}: cannot import it ({error})") from None


def _hints(function: Callable) -> dict[str, Any]:
    """Annotations of ``function`` evaluated (``from __future__ import annotations``); ``Any`` where one cannot be."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # a forward reference under TYPE_CHECKING: evaluate the parameters one by one
        pass
    namespace = {**vars(typing), **getattr(function, "__globals__", {})}
    hints = {}
    for name, annotation in getattr(function, "__annotations__", {}).items():
        try:
            hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307
        except Exception:
            hints[name] = Any
    return hints


@cache
def signature_of(target: str) -> Signature:
    """The :class:`Signature` of a ``_target_``: a class's ``__init__`` (unwrapped) or a function."""
    obj = resolve_target(target, target)
    function = inspect.unwrap(obj.__init__) if inspect.isclass(obj) else inspect.unwrap(obj)
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return Signature(target, {}, True)
    hints = _hints(function)
    named, var_keyword = {}, False
    for index, (name, p) in enumerate(parameters.items()):
        if inspect.isclass(obj) and index == 0 and name in ("self", "cls"):
            continue
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
        elif p.kind is not p.VAR_POSITIONAL:
            named[name] = Parameter(hints.get(name, Any), p.default is not p.empty)
    return Signature(target, named, var_keyword)


_PLAIN = (int, float, bool, str, type(None), list, tuple, dict, Mapping, Sequence)
_DROP = object()


def config_type(tp: Any) -> Any:
    """The part of an annotation a config value can match: a config holds only numbers, strings, booleans,
    ``null``, lists and mappings, so other classes (``torch.Tensor``, ``nn.Module``, ``Accelerator``) are dropped
    from unions (``float | Tensor`` -> ``float``), paths become ``str``; an annotation with nothing left is ``Any``."""
    result = _config_type(tp)
    return Any if result is _DROP else result


def _config_type(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = tuple(a for a in (_config_type(arg) for arg in typing.get_args(tp)) if a is not _DROP)
        return _DROP if not args else args[0] if len(args) == 1 else typing.Union[args]
    if isinstance(tp, type) and tp not in _PLAIN and not dataclasses.is_dataclass(tp):
        return str if issubclass(tp, (os.PathLike, PurePath)) else _DROP
    return tp


def _union_args(tp: Any) -> tuple:
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)


def _literal_choices(tp: Any) -> list:
    return [c for arg in _union_args(tp) if typing.get_origin(arg) is typing.Literal for c in typing.get_args(arg)]


def check_parameter(value: Any, annotation: Any, where: str) -> None:
    """Type (and block) check of one value against a parameter's annotation; nested ``_target_`` nodes are
    checked against their own target.

    Raises:
        ConfigError: naming ``where`` and the value.
    """
    if isinstance(value, Mapping) and "_target_" in value:
        check_node(value, where)
        return
    if value == "???":
        raise ConfigError(f"{where}: missing value (set {where}=...)")
    blocks = [a for a in _union_args(annotation) if dataclasses.is_dataclass(a) and isinstance(a, type)]
    if blocks and isinstance(value, Mapping):  # a typed block given as a mapping: checked key by key
        block(blocks[0], value, where)
        return
    try:
        check_value(value, config_type(annotation), where)
    except ConfigError as error:
        choices = _literal_choices(annotation)
        if choices and isinstance(value, str) and "did you mean" not in str(error):
            raise ConfigError(f"{error}{did_you_mean(value, [str(c) for c in choices])}") from None
        raise
    _check_range(value, where)


def _check_range(value: Any, where: str) -> None:
    name = where.rpartition(".")[2]
    if name not in RANGES or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high, high_included = RANGES[name]
    if (low is None or value >= low) and (high is None or value < high or (value == high and high_included)):
        return
    bounds = [] if low is None else [f">= {low}"]
    if high is not None:
        bounds.append(f"<= {high}" if high_included else f"< {high}")
    kind = "an int" if isinstance(value, int) and high is None else "a number"
    raise ConfigError(f"{where}: expected {kind} {' and '.join(bounds)}, got {value!r}")


def _extra_parameters(target: str, node: Mapping[str, Any], where: str) -> dict[str, Parameter] | None:
    """Parameters of the targets a ``**kwargs`` target forwards to (its ``config_kwargs_targets(node)``)."""
    obj = resolve_target(target, where)
    forward = getattr(obj, "config_kwargs_targets", None)
    if forward is None:
        return None
    extra: dict[str, Parameter] = {}
    for function in forward(node):
        extra.update(signature_of(f"{function.__module__}.{function.__qualname__}").parameters)
    return extra


def check_node(node: Mapping[str, Any], where: str) -> None:
    """Check one config node that has a ``_target_`` against its target's signature (see the module docstring).

    Raises:
        ConfigError: the first key at fault, named ``<where>.<key>``.
    """
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    target = node["_target_"]
    signature = signature_of(check_target(target, where))
    parameters = dict(signature.parameters)
    open_ended = signature.var_keyword
    if open_ended:
        extra = _extra_parameters(target, node, where)
        if extra is not None:
            parameters = {**extra, **parameters}
            open_ended = False
    for key, value in node.items():
        if key in HYDRA_KEYS:
            continue
        key_where = f"{where}.{key}"
        if key not in parameters:
            if open_ended:
                if isinstance(value, Mapping) and "_target_" in value:
                    check_node(value, key_where)
                continue
            hint = did_you_mean(key, list(parameters))
            known = f"see {target}'s arguments" if hint or len(parameters) > 12 else f"known: {', '.join(parameters)}"
            raise ConfigError(f"{key_where}: unknown key{hint} ({known})")
        if value is not UNRESOLVED:
            check_parameter(value, parameters[key].annotation, key_where)


UNRESOLVED = type("Unresolved", (), {"__repr__": lambda self: "<unresolved>"})()


def _resolved(value: Any) -> Any:
    """Plain containers of ``value`` with interpolations resolved in place (they see the whole config); a value
    whose interpolation cannot be resolved here (``${hydra:...}`` outside a Hydra run) becomes
    :data:`UNRESOLVED` and is not checked; ``???`` stays ``"???"``."""
    if isinstance(value, DictConfig):
        items = {}
        for key in value:
            if OmegaConf.is_missing(value, key):
                items[key] = "???"
                continue
            try:
                items[key] = _resolved(value[key])
            except Exception:  # an interpolation that needs a Hydra run (or a resolver error): not checked here
                items[key] = UNRESOLVED
        return items
    if isinstance(value, ListConfig):
        try:
            return OmegaConf.to_container(value, resolve=True, throw_on_missing=False)
        except Exception:
            return UNRESOLVED
    return value


def _walk(value: Any, where: str) -> None:
    """:func:`check_node` on every node with a ``_target_`` inside ``value`` (mappings and lists)."""
    if isinstance(value, Mapping):
        if "_target_" in value:
            check_node(value, where)
            return
        for key, item in value.items():
            _walk(item, f"{where}.{key}")
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        for i, item in enumerate(value):
            _walk(item, f"{where}[{i}]")


def check_config(cfg: DictConfig | Mapping[str, Any], sections: Sequence[str] = RUN_SECTIONS) -> None:
    """Validate the ``sections`` of a run config before anything is built (see the module docstring).

    ``cfg`` is resolved first (interpolations such as ``${seed}`` give their values); a section may be a node
    with a ``_target_`` (``trainer``, ``data``, ``model``) or a mapping of them (``callbacks``, ``logger``);
    ``null`` entries are skipped.

    Raises:
        ConfigError: the first value at fault, named by its full key (``trainer.max_epochs``).
    """
    for section in sections:
        if isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, section):
            raise ConfigError(f"{section}: missing value (choose one: {section}=<option>)")
        value = _resolved(cfg.get(section))
        if value is None or value is UNRESOLVED:
            continue
        if value == "???":
            raise ConfigError(f"{section}: missing value (choose one: {section}=<option>)")
        _walk(value, section)
