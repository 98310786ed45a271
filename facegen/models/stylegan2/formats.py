"""StyleGAN2 generator files: facegen ``.ckpt``, rosinality ``.pt`` and NVlabs ``.pkl`` in, rosinality ``.pt`` out.

Both formats become a facegen :class:`~facegen.models.stylegan2.networks.Generator` (NVlabs layer
names) with identical outputs, and a facegen generator exports to the rosinality layout.

**NVlabs** (stylegan2-ada-pytorch, stylegan3's StyleGAN2 config): a ``.pkl`` written by
``pickle.dump(dict(G=..., D=..., G_ema=..., ...))``. Its networks are ``torch_utils.persistence``
objects: each pickles as ``_reconstruct_persistent_obj(meta)`` where ``meta`` holds the *source code*
of ``training/networks.py``, the class name and the module ``__dict__`` (``_parameters``,
``_buffers``, ``_modules``, ``_init_kwargs``). NVlabs' loader ``exec``s that source. Here a restricted
unpickler (:func:`facegen.checkpoints.load_foreign`) rebuilds only tensors, numpy arrays/scalars, containers and inert
:class:`PickledObject` records for persistent objects and a short list of known classes; the source
is never executed and any other global (``os.system``, ``builtins.eval`` ...) raises CheckpointError.

**rosinality** (stylegan2-pytorch): ``torch.save({"g_ema": state_dict, "latent_avg": [w_dim], ...})``.
Key mapping, from ``model.py`` (rosinality) and ``training/networks.py`` (NVlabs)::

    style.{i+1}.weight/bias          mapping.fc{i}.weight/bias        (style.0 is PixelNorm; both lr_mul 0.01)
    input.input [1,C,4,4]            synthesis.b4.const [C,4,4]
    conv1                            synthesis.b4.conv1
    convs.{2k-2+j}  (k = log2(res)-2, j = 0 upsampling conv, 1 plain conv)   synthesis.b{res}.conv{j}
    to_rgb1, to_rgbs.{k-1}           synthesis.b4.torgb, synthesis.b{res}.torgb
    <conv>.conv.weight [1,O,I,k,k]   <layer>.weight [O,I,k,k]          (same orientation: no flip)
    <conv>.conv.modulation.*         <layer>.affine.*                  (bias_init 1, lr_mul 1)
    <conv>.noise.weight [1]          <layer>.noise_strength []
    <conv>.activate.bias [O]         <layer>.bias [O]
    to_rgb*.bias [1,3,1,1]           torgb.bias [3]
    noises.noise_{n} [1,1,r,r]       <layer n>.noise_const [r,r]        (n counts convs from b4.conv1)
    latent_avg [w_dim]               mapping.w_avg [w_dim]
    *.conv.blur.kernel, to_rgbs.*.upsample.kernel [4,4]   = outer([1,3,3,1]) / 64 * 4 (NVlabs keeps
                                     resample_filter = outer([1,3,3,1]) / 64 and applies the gain 4 when upsampling)

Conventions that agree and need no conversion: equalised-lr scales are applied at run time in both
(``1/sqrt(fan_in)``, mapping ``lr_mul/sqrt(in)`` with bias ``* lr_mul``); leaky ReLU 0.2 times
``sqrt(2)`` after the bias; noise added before the bias; ToRGB is modulated, not demodulated, with
its ``1/sqrt(in)`` scale on the weight (rosinality) or on the styles (NVlabs), which is the same product;
the upsampling conv is a stride-2 transposed convolution of the unflipped weight followed by the
[1,3,3,1] FIR with padding (1, 1) and gain 4 in both; the w index of each layer is the same.
"""
from __future__ import annotations

import math
import os
import re
from typing import Any

import torch
from torch import Tensor

from facegen.checkpoints import PickledObject, load_any
from facegen.errors import CheckpointError
from facegen.models.stylegan2.networks import Generator
from facegen.utils import atomic_torch_save

# ----------------------------------------------------------------------------------------------------
# facegen / NVlabs state dicts -> Generator

_MAPPING_LR_MULTIPLIER = 0.01  # facegen's (and both references' default) mapping-network lr multiplier
_BLUR_TAPS = (1, 3, 3, 1)


def _filter_2d() -> Tensor:
    """NVlabs ``setup_filter([1, 3, 3, 1])``: ``outer(k, k) / 64``, shape ``[4, 4]``."""
    k = torch.tensor(_BLUR_TAPS, dtype=torch.float32)
    return torch.outer(k, k) / k.sum() ** 2


def infer_generator_kwargs(state: dict[str, Tensor], source: str = "<state dict>") -> dict:
    """Generator constructor arguments from the shapes of an NVlabs/facegen generator state dict.

    Reads ``z_dim``/``c_dim``/``w_dim``/``mapping_layers`` from ``mapping.*`` and the per-resolution
    channels from ``synthesis.b{R}.conv1.weight``, then finds ``channel_base``/``channel_max`` with
    ``channels[R] == min(channel_base // R, channel_max)``.

    Raises:
        CheckpointError: keys missing, or channel counts that no (channel_base, channel_max) produces.
    """
    fc = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    res = sorted({int(m.group(1)) for k in state if (m := re.match(r"synthesis\.b(\d+)\.", k))})
    if not fc or not res or "synthesis.b4.const" not in state:
        raise CheckpointError(
            f"{source}: no StyleGAN2 generator keys (expected 'mapping.fc0.weight', 'synthesis.b4.const', "
            f"'synthesis.b{{R}}.conv1.weight', ...); first keys: {list(state)[:5]}"
        )
    c_dim = state["mapping.embed.weight"].shape[1] if "mapping.embed.weight" in state else 0
    embed = state["mapping.embed.weight"].shape[0] if c_dim else 0
    img_resolution = res[-1]
    channels = {r: state[f"synthesis.b{r}.conv1.weight"].shape[0] for r in res}
    channel_max = max(channels.values())
    candidates = sorted({channels[r] * r for r in res if channels[r] < channel_max} or {channel_max * img_resolution})
    fits = [b for b in candidates if all(min(b // r, channel_max) == channels[r] for r in res)]
    if not fits:
        raise CheckpointError(
            f"{source}: channels per resolution {channels} do not follow min(channel_base // R, channel_max)"
        )
    return dict(
        z_dim=state["mapping.fc0.weight"].shape[1] - embed, c_dim=c_dim,
        w_dim=state[f"mapping.fc{fc[-1]}.weight"].shape[0], img_resolution=img_resolution,
        img_channels=state[f"synthesis.b{img_resolution}.torgb.weight"].shape[0],
        mapping_layers=len(fc), channel_base=fits[0], channel_max=channel_max,
    )


def generator_from_state_dict(state: dict[str, Tensor], conv_clamp: float | None = None,
                              source: str = "<state dict>"):
    """A facegen ``Generator`` (float32, eval mode) holding ``state`` (NVlabs/facegen key layout).

    ``resample_filter`` buffers absent from ``state`` keep their [1, 3, 3, 1] defaults and an absent
    ``mapping.w_avg`` stays zero.

    Raises:
        CheckpointError: missing or unexpected keys, or shapes that differ from the inferred architecture.
    """
    G = Generator(**infer_generator_kwargs(state, source), conv_clamp=conv_clamp)
    full = G.state_dict()
    missing = [k for k in full if k not in state and not k.endswith(("resample_filter", "mapping.w_avg"))]
    unexpected = [k for k in state if k not in full]
    wrong = [f"{k}: {list(v.shape)} vs {list(full[k].shape)}" for k, v in state.items()
             if k in full and v.shape != full[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{source}: does not match a StyleGAN2 skip generator {G.init_kwargs}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shape mismatches {wrong[:5]}"
        )
    full.update({k: v.detach().float() for k, v in state.items()})
    G.load_state_dict(full)
    return G.eval().requires_grad_(False)


def mean_w(G, num_samples: int = 4096, seed: int = 0) -> Tensor:
    """Mean of ``G.mapping`` over ``num_samples`` z ~ N(0, I) drawn with ``seed``: ``[w_dim]``.

    Used as ``w_avg`` when a rosinality checkpoint has no ``latent_avg``; 4096 samples as rosinality's
    ``generate.py`` (``--truncation_mean``).
    """
    z = torch.randn(num_samples, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.mapping(z, None)[:, 0].mean(dim=0)


# ----------------------------------------------------------------------------------------------------
# rosinality <-> NVlabs key layouts


def _synthesis_layers(img_resolution: int) -> list[tuple[str, str, int]]:
    """(rosinality conv name, NVlabs layer name, noise index) in forward order."""
    layers = [("conv1", "synthesis.b4.conv1", 0)]
    for k in range(1, int(math.log2(img_resolution)) - 1):
        res = 4 * 2 ** k
        layers += [(f"convs.{2 * k - 2 + j}", f"synthesis.b{res}.conv{j}", 2 * k - 1 + j) for j in (0, 1)]
    return layers


def _torgb_layers(img_resolution: int) -> list[tuple[str, str]]:
    layers = [("to_rgb1", "synthesis.b4.torgb")]
    return layers + [(f"to_rgbs.{k - 1}", f"synthesis.b{4 * 2 ** k}.torgb")
                     for k in range(1, int(math.log2(img_resolution)) - 1)]


def nvlabs_from_rosinality(g_ema: dict[str, Tensor], latent_avg: Tensor | None,
                           source: str = "<rosinality>") -> dict[str, Tensor]:
    """Convert a rosinality ``g_ema`` state dict (and ``latent_avg``) to NVlabs/facegen keys.

    Raises:
        CheckpointError: a key of the rosinality layout is missing or left over, or a blur kernel is not
        the [1, 3, 3, 1] one.
    """
    g = dict(g_ema)
    used: set[str] = set()

    def take(key: str) -> Tensor:
        if key not in g:
            raise CheckpointError(f"{source}: rosinality key '{key}' missing from g_ema (keys: {list(g)[:6]} ...)")
        used.add(key)
        return g[key].detach().float()

    n_mlp = sum(1 for k in g if re.fullmatch(r"style\.\d+\.weight", k))
    img_resolution = 4 * 2 ** sum(1 for k in g if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k))
    out: dict[str, Tensor] = {}
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"] = take(f"style.{i + 1}.weight")
        out[f"mapping.fc{i}.bias"] = take(f"style.{i + 1}.bias")
    out["synthesis.b4.const"] = take("input.input")[0]
    for ros, nv, n in _synthesis_layers(img_resolution):
        out[f"{nv}.weight"] = take(f"{ros}.conv.weight")[0]
        out[f"{nv}.affine.weight"] = take(f"{ros}.conv.modulation.weight")
        out[f"{nv}.affine.bias"] = take(f"{ros}.conv.modulation.bias")
        out[f"{nv}.noise_strength"] = take(f"{ros}.noise.weight").reshape(())
        out[f"{nv}.bias"] = take(f"{ros}.activate.bias")
        out[f"{nv}.noise_const"] = take(f"noises.noise_{n}")[0, 0]
    for ros, nv in _torgb_layers(img_resolution):
        out[f"{nv}.weight"] = take(f"{ros}.conv.weight")[0]
        out[f"{nv}.affine.weight"] = take(f"{ros}.conv.modulation.weight")
        out[f"{nv}.affine.bias"] = take(f"{ros}.conv.modulation.bias")
        out[f"{nv}.bias"] = take(f"{ros}.bias").reshape(-1)
    expected_blur = _filter_2d() * 4
    for key in [k for k in g if k.endswith((".blur.kernel", ".upsample.kernel"))]:
        if not torch.allclose(take(key), expected_blur, atol=1e-6):
            raise CheckpointError(f"{source}: '{key}' is not the [1, 3, 3, 1] blur kernel (outer/64*4); "
                                  "facegen's generator supports only that filter")
    leftover = sorted(set(g) - used)
    if leftover:
        raise CheckpointError(f"{source}: unexpected keys for a rosinality skip generator: {leftover[:6]}")
    if latent_avg is not None:
        out["mapping.w_avg"] = latent_avg.detach().float().reshape(-1)
    return out


def rosinality_state_dict(G) -> dict[str, Tensor]:
    """Export a facegen ``Generator`` to rosinality's ``Generator.state_dict()`` layout (keys and shapes).

    A rosinality ``Generator(size, style_dim, n_mlp, channel_multiplier)`` loads it when
    ``z_dim == w_dim == style_dim``, ``mapping_layers == n_mlp`` and the channels equal its table
    (``channel_base = 16384 * channel_multiplier``, ``channel_max = 512``).

    Raises:
        CheckpointError: the generator is conditional, not RGB, or has ``z_dim != w_dim``.
    """
    kw = G.init_kwargs
    if kw["c_dim"] or kw["img_channels"] != 3 or kw["z_dim"] != kw["w_dim"]:
        raise CheckpointError(
            f"rosinality's layout holds unconditional RGB generators with z_dim == w_dim; this one has {kw}"
        )
    nv = {k: v.detach().cpu().float() for k, v in G.state_dict().items()}
    out: dict[str, Tensor] = {}
    for i in range(kw["mapping_layers"]):
        out[f"style.{i + 1}.weight"] = nv[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = nv[f"mapping.fc{i}.bias"]
    out["input.input"] = nv["synthesis.b4.const"][None]
    blur = _filter_2d() * 4
    for ros, layer, n in _synthesis_layers(kw["img_resolution"]):
        out[f"{ros}.conv.weight"] = nv[f"{layer}.weight"][None]
        out[f"{ros}.conv.modulation.weight"] = nv[f"{layer}.affine.weight"]
        out[f"{ros}.conv.modulation.bias"] = nv[f"{layer}.affine.bias"]
        if layer.endswith("conv0"):
            out[f"{ros}.conv.blur.kernel"] = blur.clone()
        out[f"{ros}.noise.weight"] = nv[f"{layer}.noise_strength"].reshape(1)
        out[f"{ros}.activate.bias"] = nv[f"{layer}.bias"]
    for ros, layer in _torgb_layers(kw["img_resolution"]):
        if ros != "to_rgb1":
            out[f"{ros}.upsample.kernel"] = blur.clone()
        out[f"{ros}.conv.weight"] = nv[f"{layer}.weight"][None]
        out[f"{ros}.conv.modulation.weight"] = nv[f"{layer}.affine.weight"]
        out[f"{ros}.conv.modulation.bias"] = nv[f"{layer}.affine.bias"]
        out[f"{ros}.bias"] = nv[f"{layer}.bias"].reshape(1, -1, 1, 1)
    for _, layer, n in _synthesis_layers(kw["img_resolution"]):
        out[f"noises.noise_{n}"] = nv[f"{layer}.noise_const"][None, None]
    return out


def save_rosinality(G, path: str | os.PathLike) -> None:
    """Write ``{"g_ema": rosinality_state_dict(G), "latent_avg": G.mapping.w_avg}`` with ``torch.save`` (atomic)."""
    atomic_torch_save({"g_ema": rosinality_state_dict(G), "latent_avg": G.mapping.w_avg.detach().cpu().clone()}, path)


# ----------------------------------------------------------------------------------------------------
# NVlabs pickles


def _plain(obj: Any) -> Any:
    """EasyDict records and nested containers -> plain dicts/lists."""
    if isinstance(obj, PickledObject):
        return {k: _plain(v) for k, v in obj.items.items()} if obj.items else obj
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def module_state_dict(record: PickledObject, prefix: str = "", source: str = "<pickle>") -> dict[str, Tensor]:
    """The ``state_dict()`` of a pickled ``torch.nn.Module`` record (parameters and persistent buffers)."""
    state = record.state if isinstance(record, PickledObject) else None
    if not isinstance(state, dict) or "_parameters" not in state or "_modules" not in state:
        raise CheckpointError(f"{source}: '{prefix or record!r}' is not a pickled torch.nn.Module record")
    out = {prefix + k: v.detach() for k, v in state["_parameters"].items() if v is not None}
    non_persistent = state.get("_non_persistent_buffers_set", set())
    buffers = state.get("_buffers", {})
    out.update({prefix + k: v for k, v in buffers.items() if v is not None and k not in non_persistent})
    for name, child in state["_modules"].items():
        if child is not None:
            out.update(module_state_dict(child, f"{prefix}{name}.", source))
    return out


def generator_from_nvlabs_record(record: PickledObject, source: str = "<pickle>"):
    """A facegen ``Generator`` from the pickled NVlabs ``G_ema`` record (see :func:`load_nvlabs_pkl`)."""
    if not isinstance(record, PickledObject) or record.name != "Generator":
        raise CheckpointError(f"{source}: 'G_ema' is {record!r}, expected a pickled NVlabs training.networks.Generator")
    kwargs = _plain(record.state.get("_init_kwargs", {})) if isinstance(record.state, dict) else {}
    synthesis_kwargs = dict(kwargs.get("synthesis_kwargs", {}))
    mapping_kwargs = dict(kwargs.get("mapping_kwargs", {}))
    if synthesis_kwargs.get("architecture", "skip") != "skip":
        raise CheckpointError(f"{source}: synthesis architecture '{synthesis_kwargs['architecture']}'; "
                              "facegen's generator is the skip architecture only")
    state = module_state_dict(record, source=source)
    lr_multiplier = float(mapping_kwargs.get("lr_multiplier", _MAPPING_LR_MULTIPLIER))
    if lr_multiplier != _MAPPING_LR_MULTIPLIER:  # same effective weights under facegen's multiplier
        for key in [k for k in state if re.fullmatch(r"mapping\.fc\d+\.(weight|bias)", k)]:
            state[key] = state[key] * (lr_multiplier / _MAPPING_LR_MULTIPLIER)
    return generator_from_state_dict(state, conv_clamp=synthesis_kwargs.get("conv_clamp"), source=source)


def _from_nvlabs(obj: Any, source: str, key: str = "G_ema"):
    if not isinstance(obj, dict) or key not in obj:
        keys = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{source}: no '{key}' entry (found {keys}); expected an NVlabs network pickle "
                              "dict(G=..., D=..., G_ema=...)")
    G = generator_from_nvlabs_record(obj[key], source=source)
    return G, G.mapping.w_avg.clone()


def _from_rosinality(obj: Any, source: str):
    if not isinstance(obj, dict) or "g_ema" not in obj:
        raise CheckpointError(f"{source}: no 'g_ema' state dict; expected rosinality's "
                              "{'g_ema': Generator.state_dict(), 'latent_avg': [w_dim]}")
    state = nvlabs_from_rosinality(obj["g_ema"], obj.get("latent_avg"), source=source)
    G = generator_from_state_dict(state, source=source)
    if "mapping.w_avg" not in state:
        G.mapping.w_avg.copy_(mean_w(G))
    return G, G.mapping.w_avg.clone()


def _find_key(tree: Any, name: str) -> Any:
    """First value stored under ``name`` anywhere in nested dicts (Lightning hyper-parameters)."""
    if isinstance(tree, dict):
        if name in tree:
            return tree[name]
        for value in tree.values():
            found = _find_key(value, name)
            if found is not None:
                return found
    return None


def _conv_clamp(hparams: dict) -> float | None:
    """The generator's ``conv_clamp`` in a StyleGAN2 checkpoint's hyper-parameters (``generator.conv_clamp``;
    flat ``conv_clamp`` in checkpoints written before the grouped constructor)."""
    generator = hparams.get("generator") if isinstance(hparams, dict) else None
    if isinstance(generator, dict) and "conv_clamp" in generator:
        return generator["conv_clamp"]
    return _find_key(hparams, "conv_clamp")


def _from_lightning(obj: Any, source: str, prefix: str = "G_ema."):
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not any(k.startswith(prefix) for k in state):
        raise CheckpointError(f"{source}: no '{prefix}*' keys in 'state_dict'; expected a facegen StyleGAN2 checkpoint")
    G = generator_from_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                                  conv_clamp=_conv_clamp(_plain(obj.get("hyper_parameters", {}))),
                                  source=source)
    return G, G.mapping.w_avg.clone()


def load_nvlabs_pkl(path: str | os.PathLike, key: str = "G_ema"):
    """Read an NVlabs stylegan2-ada-pytorch network pickle without running its code.

    Returns ``(G, w_avg [w_dim])``: a facegen ``Generator`` in float32 (``num_fp16_res=0``; the
    pickle's ``conv_clamp`` is kept) with ``G.mapping.w_avg`` from the pickle. A mapping
    ``lr_multiplier`` other than 0.01 is folded into the stored weights.

    Raises:
        CheckpointError: unreadable file, a global outside the allow-list, no ``key``, or an architecture
        other than StyleGAN2 skip (TF-era pickles must go through NVlabs ``legacy.py`` first).
    """
    return _from_nvlabs(load_any(path), str(path), key)


def load_rosinality(path: str | os.PathLike):
    """Read a rosinality stylegan2-pytorch checkpoint (``{"g_ema": ..., "latent_avg": ...}``).

    Returns ``(G, w_avg [w_dim])``. Without ``latent_avg`` (rosinality's ``train.py`` does not store
    one), ``w_avg`` is :func:`mean_w` of the imported mapping network.

    Raises:
        CheckpointError: unreadable file, no ``g_ema``, or keys/shapes outside the rosinality layout.
    """
    return _from_rosinality(load_any(path), str(path))


def load_lightning(path: str | os.PathLike):
    """The EMA generator of a facegen ``StyleGAN2`` Lightning checkpoint, read as a state dict.

    The architecture comes from the tensor shapes and ``conv_clamp`` from the saved hyper-parameters;
    the LightningModule class is not needed. Returns ``(G, w_avg [w_dim])``.

    Raises:
        CheckpointError: no ``state_dict`` or no ``G_ema.*`` keys.
    """
    return _from_lightning(load_any(path), str(path))


GENERATOR_FORMAT = "facegen-generator"


def save_generator(G, path: str | os.PathLike, dtype: torch.dtype = torch.float16, **meta: Any) -> None:
    """Write a generator alone (no discriminator, no optimiser): ``{"format": "facegen-generator", "version": 1,
    "init_kwargs", "weights" (in ``dtype``; float16 halves the file), "meta"}`` with ``torch.save``, atomically.

    ``meta`` holds plain values that describe the file (its source checkpoint, ``kimg``, the command that made it).
    :func:`load_generator` reads it back in float32.
    """
    kwargs = dict(G.init_kwargs, channels_last=False, num_fp16_res=G.init_kwargs.get("num_fp16_res", 0))
    weights = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous()
               for k, v in G.state_dict().items()}
    atomic_torch_save({"format": GENERATOR_FORMAT, "version": 1, "init_kwargs": kwargs, "weights": weights,
                       "meta": dict(meta)}, path)


def _from_generator_file(obj: dict, source: str):
    try:
        G = Generator(**obj["init_kwargs"])
        G.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in obj["weights"].items()})
    except (KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"{source}: a {GENERATOR_FORMAT} file whose weights do not fit its init_kwargs "
                              f"({str(error).splitlines()[0][:200]})") from None
    return G.eval(), G.mapping.w_avg.clone()


def load_generator(path: str | os.PathLike):
    """Load a generator from any supported checkpoint, dispatching on its content.

    ``format: facegen-generator`` -> :func:`save_generator`'s file; ``state_dict`` with ``G_ema.*`` keys -> facegen
    Lightning checkpoint; ``g_ema`` -> rosinality; ``G_ema`` record -> NVlabs pickle. Returns ``(G, w_avg
    [w_dim])`` with ``G`` in eval mode, float32.

    Raises:
        CheckpointError: none of these layouts, or an error of the matching loader.
    """
    obj, source = load_any(path), str(path)
    if isinstance(obj, dict) and obj.get("format") == GENERATOR_FORMAT:
        return _from_generator_file(obj, source)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return _from_lightning(obj, source)
    if isinstance(obj, dict) and "g_ema" in obj:
        return _from_rosinality(obj, source)
    if isinstance(obj, dict) and "G_ema" in obj:
        return _from_nvlabs(obj, source)
    keys = sorted(map(str, obj))[:8] if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointError(f"{source}: unknown checkpoint layout (top level: {keys}); expected a facegen Lightning "
                          "checkpoint ('state_dict' with 'G_ema.*'), rosinality ('g_ema') or NVlabs pickle ('G_ema')")
