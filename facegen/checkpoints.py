"""The one loading policy for every file facegen reads that may hold a pickle: no file may run code.

Two readers, nothing else in facegen calls ``torch.load`` or ``pickle``:

- :func:`load` for facegen's own files (Lightning ``.ckpt`` of every model, the face regressor ``.pt``,
  weight files): ``torch.load(weights_only=True)``, said explicitly (torch before 2.6 defaults to False, and
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` overrides only a call that leaves it unset), with the allow-list
  :data:`SAFE_GLOBALS` of the few inert types facegen's own checkpoints may hold;
- :func:`load_foreign` for other programs' files (NVlabs ``.pkl``: ``torch_utils.persistence`` records that
  carry source code, which NVlabs' loader ``exec``s; rosinality ``.pt`` with an ``argparse.Namespace``): a
  restricted unpickler that rebuilds tensors, arrays, containers and inert :class:`PickledObject` records and
  never imports or runs anything else;
- :func:`load_any` (generator files of any origin) tries :func:`load` and falls back to :func:`load_foreign`
  for plain pickles and for the foreign record classes only.

A refused file raises :class:`~facegen.errors.CheckpointError` naming the file and the refused global; a
file that is not a checkpoint at all (an image, a truncated archive) raises it naming the file too.
"""
from __future__ import annotations

import _compat_pickle
import codecs
import copyreg
import io
import os
import pickle
import re
import types
import zipfile
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facegen.errors import CheckpointError

# Inert types a facegen checkpoint may hold besides tensors and plain containers: numpy scalars and dtypes
# (a metric or an array kept in a callback's state), and the element types OmegaConf records.
SAFE_GLOBALS: list[Any] = [
    np.dtype, np.ndarray, (np._core if hasattr(np, "_core") else np.core).multiarray.scalar,
    (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct,
    *{type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool", "uint8")},
    Any, defaultdict,
]
_REFUSED = re.compile(r"(?:GLOBAL|global:?) '?([A-Za-z_][\w]*(?:\.[\w]+)+)")


def _refused_global(error: Exception) -> str | None:
    match = _REFUSED.search(str(error))
    return match.group(1) if match else None


def load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Read a facegen file written with ``torch.save`` (checkpoints, the face regressor, weight files).

    ``torch.load(path, weights_only=True)`` with :data:`SAFE_GLOBALS` allowed.

    Raises:
        CheckpointError: the file is missing, is not a ``torch.save`` file, is truncated, or needs a global
            outside the allow-list (the message names the file and the global).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _refused_global(error)
        if refused:
            raise CheckpointError(f"{path}: refused to load the global '{refused}': facegen reads tensors, arrays "
                                  "and plain containers only and never runs code from a file") from None
        raise CheckpointError(f"{path}: not a torch.save checkpoint ({str(error).splitlines()[0][:200]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path}: cannot be read as a torch.save checkpoint "
                              f"(truncated or corrupt: {str(error).splitlines()[0][:200]})") from None


def load_any(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """A facegen file through :func:`load`, or another program's through :func:`load_foreign`.

    Falls back to the restricted unpickler only for plain pickles and for refusals of the foreign record
    classes it stands in for (NVlabs ``torch_utils``/``dnnlib``, ``argparse``, ``omegaconf``); any other refused
    global stays refused.

    Raises:
        CheckpointError: as :func:`load` / :func:`load_foreign`.
    """
    try:
        return load(path, map_location=map_location)
    except CheckpointError as error:
        message = str(error)
        foreign = any(f"'{prefix}" in message for prefix in _STUB_MODULE_PREFIXES)
        if "not a torch.save checkpoint" in message or foreign:
            return load_foreign(path)
        raise


class PickledObject:
    """Inert stand-in for an object of a class that is not imported: its name, arguments and state.

    ``module`` and ``name`` are the pickled class's; ``args`` what the pickle passed to construct it;
    ``state`` the ``__dict__`` (or ``__setstate__`` argument); ``items`` what a dict subclass held.
    """

    def __init__(self, module: str, name: str, args: tuple = (), state: Any = None):
        self.module, self.name, self.args, self.state = module, name, args, state
        self.items: dict = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def __repr__(self) -> str:
        return f"PickledObject({self.module}.{self.name})"


def _stub_class(module: str, name: str) -> type:
    """A class whose construction (``NEWOBJ``/``REDUCE``) records a :class:`PickledObject` only."""

    def new(cls, *args, **kwargs):
        return PickledObject(module, name, args)

    return type(name, (), {"__new__": new, "__module__": "facegen.checkpoints.stub"})


def _reconstruct_persistent_obj(meta: dict) -> PickledObject:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``: keeps the state, ignores ``module_src``."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or "class_name" not in meta:
        raise CheckpointError(f"torch_utils.persistence record has an unknown layout: keys {sorted(meta)[:6]}")
    return PickledObject("torch_utils.persistence", str(meta["class_name"]), state=meta.get("state"))


def _load_storage_from_bytes(data: bytes):
    """``torch.storage._load_from_bytes`` with ``weights_only=True`` (the original unpickles without limits)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _rebuild_from_type_v2(func, new_type, args, state):
    """``torch._tensor._rebuild_from_type_v2`` restricted to ``Tensor``/``Parameter`` results."""
    tensor = func(*args)
    if new_type is torch.nn.Parameter:
        tensor = torch.nn.Parameter(tensor, requires_grad=tensor.requires_grad)
    elif new_type is not torch.Tensor:
        raise CheckpointError(f"pickled tensor of type {new_type!r}; only torch.Tensor/Parameter are accepted")
    return tensor


def _numpy_global(name: str):
    """``numpy.core.multiarray.scalar`` / ``_reconstruct`` (``numpy._core`` from numpy 2 on)."""
    multiarray = (np._core if hasattr(np, "_core") else np.core).multiarray
    return {"scalar": multiarray.scalar, "_reconstruct": multiarray._reconstruct}.get(name)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "defaultdict"): defaultdict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "object"): object,
    # protocol-2 object records (copyreg) and py2 bytes: they only rebuild the allowed classes above
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("_codecs", "encode"): codecs.encode,
    # element/key/object types recorded by OmegaConf containers in Lightning hyper-parameters (inert types)
    ("typing", "Any"): Any,
    **{("builtins", t.__name__): t for t in (list, dict, tuple, int, float, str, bool, bytes)},
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
}
# Classes recorded as PickledObject: NVlabs' own modules, dnnlib.EasyDict, argparse.Namespace
# (rosinality stores its training ``args``), torch.nn modules, OmegaConf/Lightning containers in
# Lightning hyper-parameters. None of them is imported or constructed.
_STUB_MODULE_PREFIXES = ("training.", "torch_utils.", "dnnlib", "argparse", "torch.nn.modules.", "omegaconf.",
                         "lightning.", "pytorch_lightning.")


def _find_allowed(module: str, name: str):
    # protocol-2 pickles (OmegaConf's metadata) use Python 2 names: map them as pickle's fix_imports does
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    found = _ALLOWED.get((module, name))
    if found is None and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found = _numpy_global(name)
    if found is None and module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        found = getattr(torch, name)
    if found is None and module.startswith(_STUB_MODULE_PREFIXES) and name[:1].isupper():
        found = _stub_class(module, name)
    return found


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the globals listed in this module; others raise CheckpointError.

    ``stand_ins`` maps module prefixes of a format's own classes (FLAME's ``chumpy``) to inert classes of the
    caller's that keep the pickled state.
    """

    source = "<pickle>"
    stand_ins: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        found = next((cls for prefix, cls in self.stand_ins.items()
                      if module == prefix or module.startswith(prefix + ".")), None) or _find_allowed(module, name)
        if found is None:
            raise CheckpointError(
                f"{self.source}: refused to load the global '{module}.{name}': facegen reads tensors, arrays, "
                "plain containers and inert network records only and never runs code from a file"
            )
        return found


def _pickle_module(source: str, stand_ins: dict[str, type] | None = None) -> types.SimpleNamespace:
    """A ``pickle_module`` for ``torch.load`` whose Unpickler is :class:`RestrictedUnpickler` naming ``source``."""
    unpickler = type("RestrictedUnpickler", (RestrictedUnpickler,), {"source": source, "stand_ins": stand_ins or {}})
    return types.SimpleNamespace(__name__="facegen_restricted_pickle", Unpickler=unpickler,
                                 load=lambda f, **kw: unpickler(f, **kw).load())


def load_foreign(path: str | os.PathLike, stand_ins: dict[str, type] | None = None, encoding: str = "ASCII") -> Any:
    """Load a foreign ``torch.save`` file or plain pickle (NVlabs ``.pkl``, rosinality ``.pt``) without running code.

    ``torch.save`` archives (zip or legacy) go through ``torch.load`` with :class:`RestrictedUnpickler`;
    plain pickles (NVlabs ``.pkl``) through :class:`RestrictedUnpickler` directly. Tensors come back on
    the CPU; unknown NVlabs/dnnlib/argparse classes come back as :class:`PickledObject`. ``stand_ins``: see
    :class:`RestrictedUnpickler`; ``encoding``: of Python-2 strings (``"latin1"`` for numpy arrays in py2 pickles).

    Raises:
        CheckpointError: the file is missing, truncated, or references a global outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    restricted = _pickle_module(str(path), stand_ins)
    try:
        if zipfile.is_zipfile(path):
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted)
        with open(path, "rb") as f:
            obj = restricted.Unpickler(f, encoding=encoding).load()
        if isinstance(obj, int) and obj == 0x1950A86A20F9469CFC6C:  # legacy (non-zip) torch.save magic number
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted)
        return obj
    except CheckpointError:
        raise
    except Exception as error:  # corrupt or truncated file: name it
        raise CheckpointError(f"{path}: cannot be read as a torch.save file or pickle ({error})") from error
