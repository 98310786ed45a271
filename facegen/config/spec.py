"""Networks, losses and optimisers given as config blocks, built only from trusted targets.

A LightningModule gets grouped arguments (NVlabs edm's ``network_kwargs`` / ``loss_kwargs`` /
``optimizer_kwargs``, lightning-hydra-template's ``net: {_target_: ...}``, ``optimizer: {_target_: ...,
_partial_: true}``) and keeps them as plain dicts in its hyper-parameters, so a checkpoint stays readable with
``torch.load(weights_only=True)``. Hyper-parameters come back from checkpoints, and a checkpoint is a file from
anywhere: every ``_target_`` is checked against :data:`TRUSTED_TARGETS` before Hydra imports it, so a config
inside a file can never name ``os.system``.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from facegen.errors import ConfigError

# Module prefixes a ``_target_`` may name: facegen itself, torch's optimisers, schedulers and layers, and the
# Lightning pieces the configs use. Anything else is refused, whichever file or command line it came from.
TRUSTED_TARGETS = ("facegen.", "torch.optim.", "torch.nn.", "lightning.pytorch.callbacks.",
                   "lightning.pytorch.loggers.", "lightning.pytorch.Trainer", "lightning.pytorch.trainer.")


def check_target(target: Any, where: str) -> str:
    """``target`` if it is a dotted name under :data:`TRUSTED_TARGETS`.

    Raises:
        ConfigError: not a string, or outside the trusted prefixes (names ``where`` and the target).
    """
    if not isinstance(target, str) or not target.startswith(TRUSTED_TARGETS):
        raise ConfigError(f"{where}._target_={target!r}: facegen builds only targets under {list(TRUSTED_TARGETS)}")
    return target


def check_targets(config: Any, where: str) -> None:
    """:func:`check_target` on every ``_target_`` nested anywhere in ``config`` (dicts, lists, DictConfig)."""
    if isinstance(config, (DictConfig,)):
        config = OmegaConf.to_container(config, resolve=False)
    if isinstance(config, Mapping):
        if "_target_" in config:
            check_target(config["_target_"], where)
        for key, value in config.items():
            check_targets(value, f"{where}.{key}")
    elif isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            check_targets(value, f"{where}[{i}]")


def as_spec(value: Any, where: str) -> dict[str, Any]:
    """A plain dict config of ``value``: a mapping as it is, a ``functools.partial`` of a trusted callable as
    ``{"_target_": "module.name", "_partial_": True, **keywords}`` (so it can be stored in hyper-parameters).

    Raises:
        ConfigError: anything else, or an untrusted target.
    """
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        spec = dict(value)
    elif isinstance(value, functools.partial) and not value.args:
        spec = {"_target_": f"{value.func.__module__}.{value.func.__qualname__}", "_partial_": True, **value.keywords}
    else:
        raise ConfigError(f"{where}: expected a config block (mapping) or functools.partial, got {type(value).__name__}")
    check_targets(spec, where)
    return spec


def complete(value: Any, default: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A ``_target_`` block (network, optimiser) as a plain dict completed from ``default``.

    ``None`` -> ``default``; a block naming no ``_target_`` or ``default``'s -> ``value`` over ``default``
    (``{"lr": 3e-3}``, an old checkpoint's flat keys); a block naming another target -> ``value`` alone (another
    class gets only its own keys).

    Raises:
        ConfigError: not a mapping (or partial), or an untrusted ``_target_``.
    """
    if value is None:
        return dict(default)
    spec = as_spec(value, where)
    if spec.get("_target_", default.get("_target_")) != default.get("_target_"):
        return spec
    return {**default, **spec}


def build(spec: Mapping[str, Any], where: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(spec, **kwargs)`` after :func:`check_targets`; a partial spec returns the partial."""
    check_targets(spec, where)
    try:
        return instantiate(dict(spec), **kwargs, _convert_="all")
    except ConfigError:
        raise
    except Exception as error:  # Hydra wraps the constructor's error: name the block
        raise ConfigError(f"{where}: cannot build {spec.get('_target_')!r}: {error}") from error


def optimizer_factory(spec: Mapping[str, Any], where: str = "optimizer") -> Callable[..., Any]:
    """``params -> torch.optim.Optimizer`` from ``{_target_: torch.optim.Adam, _partial_: true, lr: ...}``.

    Raises:
        ConfigError: no ``_target_``, an untrusted target, or a spec that does not build a callable.
    """
    if "_target_" not in spec:
        raise ConfigError(f"{where}: needs a _target_ (e.g. torch.optim.Adam) and _partial_: true")
    factory = build({**spec, "_partial_": True}, where)
    if not callable(factory):
        raise ConfigError(f"{where}: {spec['_target_']!r} did not build a callable optimiser factory")
    return factory
