"""StyleSpace analysis and editing (Wu, Lischinski and Shechtman, "StyleSpace Analysis: Disentangled
Controls for StyleGAN Image Generation", CVPR 2021), plus style mixing by layer ranges.

Style space S is the per-layer affine output ``s = A(w)`` (``G.synthesis.w_to_s`` / ``forward_s``, see
:mod:`facegen.models.stylegan2.networks`). Wu et al. (sec. 4) locate channels that control a semantic region
by the **gradient map** of the image with respect to each style channel and its overlap with the region's
mask. Here:

- gradient map of channel ``c`` of layer ``l`` at sample ``b``: ``|G(s + h e_c) - G(s)| / h`` summed over
  the image channels, ``[H, W]``, a one-sided finite difference with ``h = step * std(s_c)`` (exact for
  small ``h``; a forward-mode Jacobian column per channel costs as much and is not supported by every op);
- overlap score of the channel with region ``r`` (mask ``m_r`` from landmarks, e.g. the eyes' box of the
  dataset's mean landmarks): the fraction of the map's mass inside the mask, ``sum(g * m_r) / sum(g)``,
  averaged over samples (a threshold-free version of Wu et al.'s thresholded overlap); a channel that acts
  uniformly scores the mask's area fraction, a local one near 1;
- edits are ``s_c <- s_c + alpha * std(s_c)`` with ``std`` over random samples (Wu et al. sec. 5);
- style mixing copies the w's of a range of synthesis layers from a source into a target (Karras et al.
  2019, sec. 3.1); :func:`mixing_response` measures which region each range moves (Igaue et al. 2025 report
  layers 0-2 for the mouth and 6-8 for the eyes of their macaque model).

toRGB styles are skipped by default (Wu et al. analyse them separately: they change colour, not shape).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from facegen.errors import StyleGANInputError
from facegen.imaging import images_to_grid, write_png
from facegen.models.stylegan2.region import box_mask, region_boxes
from facegen.shapes import assert_shape
from facegen.utils import atomic_write


def _device(G) -> torch.device:
    return next(G.parameters()).device


@torch.no_grad()
def sample_w_plus(G, n: int, seed: int = 0, truncation_psi: float = 1.0, c: Tensor | None = None) -> Tensor:
    """``[n, num_ws, w_dim]`` from seeded z's (``torch.Generator().manual_seed(seed)``)."""
    z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(seed)).to(_device(G))
    return G.mapping(z, c, truncation_psi=truncation_psi, update_w_avg=False)


@torch.no_grad()
def style_statistics(G, num_samples: int = 1000, seed: int = 0,
                     batch_size: int = 250) -> tuple[list[Tensor], list[Tensor]]:
    """Mean and std of every style channel over ``num_samples`` random z's: two lists of ``[C_l]`` tensors
    in ``G.synthesis.style_names`` order."""
    chunks = []
    for start in range(0, num_samples, batch_size):
        ws = sample_w_plus(G, min(batch_size, num_samples - start), seed=seed + start)
        chunks.append([s.cpu() for s in G.synthesis.w_to_s(ws)])
    per_layer = [torch.cat([c[i] for c in chunks]) for i in range(len(chunks[0]))]
    return [s.mean(0) for s in per_layer], [s.std(0) for s in per_layer]


@torch.no_grad()
def gradient_maps(G, styles: Sequence[Tensor], layer: int, std: Tensor, step: float = 0.1,
                  channels: Sequence[int] | None = None, chunk: int = 64) -> Tensor:
    """Gradient maps ``[len(channels), B, H, W]`` (float32, >= 0) of the images w.r.t. style channels of ``layer``.

    Args:
        G: generator with ``synthesis.forward_s``.
        styles: ``[B, C_l]`` per layer (``G.synthesis.w_to_s(w_plus)``).
        layer: index into ``styles``; std: ``[C_layer]`` channel std (finite-difference step ``step * std``).
        channels: channels to map (default all); chunk: channels per forward pass.

    Raises:
        StyleGANInputError: ``layer`` out of range, or ``std`` not ``[C_layer]``.
    """
    if not 0 <= layer < len(styles):
        raise StyleGANInputError(f"layer {layer} outside 0..{len(styles) - 1}")
    assert_shape(std, [styles[layer].shape[1]], "std", error=StyleGANInputError,
                 hint=f"one std per channel of styles[{layer}]")
    channels = list(range(styles[layer].shape[1])) if channels is None else list(channels)
    base = G.synthesis.forward_s(list(styles), noise_mode="const")  # [B, C, H, W]
    h = (step * std.to(base.device).float()).clamp_min(1e-6)
    out = []
    for b in range(base.shape[0]):
        maps = []
        for start in range(0, len(channels), chunk):
            idx = torch.tensor(channels[start:start + chunk], device=base.device)
            k = len(idx)
            batch = [s[b:b + 1].expand(k, -1).clone() for s in styles]
            batch[layer][torch.arange(k, device=base.device), idx] += h[idx]
            diff = (G.synthesis.forward_s(batch, noise_mode="const") - base[b:b + 1]).abs().sum(1)  # [k, H, W]
            maps.append(diff / h[idx].view(-1, 1, 1))
        out.append(torch.cat(maps))
    return torch.stack(out, dim=1).cpu()


def region_masks(landmarks, regions: Sequence[str], resolution: int, margin: float = 0.25) -> dict[str, Tensor]:
    """Region name -> ``[resolution, resolution]`` box mask from landmarks (the boxes of
    :func:`facegen.models.stylegan2.region.region_boxes`: Keypoints, a landmarks file or an array)."""
    boxes = region_boxes(landmarks, regions, resolution, margin=margin)
    return {name: box_mask(box, resolution) for name, box in boxes.items()}


@dataclass
class ChannelScores:
    """Overlap scores of style channels with regions.

    layers: analysed layer indices (into ``style_names``); names: their ``style_names``.
    scores: region -> layer index -> ``[C_l]`` mean overlap in [0, 1]; area: region -> mask area fraction.
    std: layer index -> ``[C_l]`` channel std (the edit unit).
    """

    layers: list[int]
    names: list[str]
    scores: dict[str, dict[int, Tensor]]
    area: dict[str, float]
    std: dict[int, Tensor] = field(default_factory=dict)

    def top(self, region: str, k: int = 5) -> list[dict]:
        """The ``k`` best channels for ``region``: dicts ``layer_index, layer, channel, score, std``."""
        if region not in self.scores:
            raise StyleGANInputError(f"no scores for region {region!r}; have {sorted(self.scores)}")
        rows = [(float(v), layer, c) for layer, values in self.scores[region].items() for c, v in enumerate(values)]
        rows.sort(key=lambda t: -t[0])
        name = dict(zip(self.layers, self.names))
        return [{"layer_index": layer, "layer": name[layer], "channel": c, "score": round(v, 4),
                 "std": float(self.std[layer][c]) if layer in self.std else None} for v, layer, c in rows[:k]]


def channel_scores(G, masks: Mapping[str, Tensor], num_samples: int = 4, seed: int = 0,
                   layers: Sequence[int] | None = None, include_torgb: bool = False, step: float = 0.1,
                   std: Sequence[Tensor] | None = None, std_samples: int = 500) -> ChannelScores:
    """Score every style channel of ``layers`` by the overlap of its gradient maps with each region mask.

    Args:
        G: StyleGAN2 generator (``mapping``, ``synthesis.w_to_s``/``forward_s``/``style_names``).
        masks: region -> ``[H, W]`` float mask (:func:`region_masks`).
        num_samples, seed: random samples the maps are averaged over.
        layers: layer indices (default every conv layer; also toRGB with ``include_torgb``).
        step: finite-difference step in channel stds; std: per-layer channel std (default
            :func:`style_statistics` of ``std_samples`` samples).
    Returns:
        :class:`ChannelScores`.
    """
    names = list(G.synthesis.style_names)
    if layers is None:
        layers = [i for i, n in enumerate(names) if include_torgb or not n.endswith("torgb")]
    if std is None:
        _, std = style_statistics(G, std_samples, seed=seed + 1)
    styles = [s.detach() for s in G.synthesis.w_to_s(sample_w_plus(G, num_samples, seed=seed))]
    flat = {r: m.reshape(-1).float() for r, m in masks.items()}
    scores: dict[str, dict[int, Tensor]] = {r: {} for r in masks}
    for layer in layers:
        maps = gradient_maps(G, styles, layer, std[layer], step=step).flatten(2)  # [C, B, H*W]
        total = maps.sum(-1).clamp_min(1e-12)
        for r, m in flat.items():
            scores[r][layer] = ((maps * m).sum(-1) / total).mean(1)  # [C]
    area = {r: float(m.mean()) for r, m in flat.items()}
    return ChannelScores(list(layers), [names[i] for i in layers], scores, area, {i: std[i].cpu() for i in layers})


def edit_styles(styles: Sequence[Tensor], layer: int, channel: int, alpha: float, std: float) -> list[Tensor]:
    """Copy of ``styles`` with ``s[layer][:, channel] += alpha * std`` (Wu et al. sec. 5)."""
    out = [s.clone() for s in styles]
    out[layer][:, channel] += alpha * std
    return out


def mix_layers(ws_target: Tensor, ws_source: Tensor, layers: Sequence[int]) -> Tensor:
    """``ws_target [B, num_ws, w_dim]`` with the w's at ``layers`` copied from ``ws_source`` (same shape or
    ``[1, ...]``).

    Raises:
        StyleGANInputError: ``ws_target`` is not ``[B, num_ws, w_dim]`` or ``ws_source`` not of its shape.
    """
    _check_pair(ws_target, ws_source)
    out = ws_target.clone()
    idx = list(layers)
    out[:, idx] = ws_source.expand_as(ws_target)[:, idx]
    return out


def _check_pair(ws_target: Tensor, ws_source: Tensor) -> None:
    """``ws_target [B, num_ws, w_dim]`` and ``ws_source`` of the same shape or ``[1, num_ws, w_dim]``."""
    assert_shape(ws_target, ["B", "num_ws", "w_dim"], "ws_target", error=StyleGANInputError, hint="W+ latents")
    shared = ws_source.ndim == 3 and ws_source.shape[0] == 1
    assert_shape(ws_source, [1 if shared else ws_target.shape[0], *ws_target.shape[1:]], "ws_source",
                 error=StyleGANInputError, hint="the shape of ws_target, or [1, num_ws, w_dim] for all")


@torch.no_grad()
def mixing_response(G, ws_target: Tensor, ws_source: Tensor, layer_ranges: Mapping[str, Sequence[int]],
                    masks: Mapping[str, Tensor]) -> list[dict]:
    """Which region each range of mixed layers moves: one row per range with, per region, the fraction of
    the mean absolute image change that falls inside the region's mask (``<region>_share``; compare with
    ``<region>_area``), and the mean change ``mean_abs_change`` (image units)."""
    base = G.synthesis(ws_target, noise_mode="const")
    rows = []
    for label, layers in layer_ranges.items():
        diff = (G.synthesis(mix_layers(ws_target, ws_source, layers), noise_mode="const") - base).abs().sum(1)
        total = diff.sum((1, 2)).clamp_min(1e-12)
        row = {"layers": label, "mean_abs_change": round(float(diff.mean()), 4)}
        for r, m in masks.items():
            row[f"{r}_share"] = round(float(((diff * m.to(diff)).sum((1, 2)) / total).mean()), 4)
        rows.append(row)
    for r, m in masks.items():
        for row in rows:
            row[f"{r}_area"] = round(float(m.mean()), 4)
    return rows


@torch.no_grad()
def edit_grid(G, ws: Tensor, edits: Sequence[Mapping], alphas: Sequence[float], path: str | Path) -> Path:
    """PNG with one row per (edit, sample) and one column per ``alpha``: ``s_c += alpha * std``.

    ``ws [N, num_ws, w_dim]``; each edit is a mapping with ``layer_index``, ``channel``, ``std``
    (e.g. rows of :meth:`ChannelScores.top`).

    Raises:
        StyleGANInputError: ``ws`` is not ``[N, num_ws, w_dim]``.
    """
    assert_shape(ws, ["N", "num_ws", "w_dim"], "ws", error=StyleGANInputError, hint="W+ latents")
    styles = G.synthesis.w_to_s(ws)
    rows = []
    for edit in edits:
        for n in range(ws.shape[0]):
            s_n = [s[n:n + 1] for s in styles]
            for alpha in alphas:
                edited = edit_styles(s_n, int(edit["layer_index"]), int(edit["channel"]), float(alpha),
                                     float(edit["std"]))
                rows.append(G.synthesis.forward_s(edited, noise_mode="const"))
    return write_png(path, images_to_grid(torch.cat(rows), len(alphas)))


@torch.no_grad()
def mixing_grid(G, ws_target: Tensor, ws_source: Tensor, layer_ranges: Mapping[str, Sequence[int]],
                path: str | Path) -> Path:
    """PNG: per target sample a row ``[target, source, mixed range 1, mixed range 2, ...]``.

    ``ws_target [B, num_ws, w_dim]``, ``ws_source`` of its shape or ``[1, num_ws, w_dim]``; raises
    StyleGANInputError for other shapes.
    """
    _check_pair(ws_target, ws_source)
    source = G.synthesis(ws_source.expand_as(ws_target), noise_mode="const")
    target = G.synthesis(ws_target, noise_mode="const")
    columns = [target, source] + [G.synthesis(mix_layers(ws_target, ws_source, layers), noise_mode="const")
                                  for layers in layer_ranges.values()]
    images = torch.stack(columns, dim=1).flatten(0, 1)  # [N * cols, C, H, W]
    return write_png(path, images_to_grid(images, len(columns)))


def save_directions(path: str | Path, scores: ChannelScores, k: int = 5) -> Path:
    """Write the top-``k`` channels per region (the edit directions ``s_c += alpha * std``) as JSON:
    ``{"regions": {region: [{layer_index, layer, channel, score, std}, ...]}, "area": {region: fraction}}``."""
    data = {"regions": {r: scores.top(r, k) for r in scores.scores}, "area": scores.area,
            "edit": "s[layer][channel] += alpha * std (Wu et al. 2021)"}
    atomic_write(path, json.dumps(data, indent=1))
    return Path(path)


def load_directions(path: str | Path) -> dict[str, list[dict]]:
    """Region -> list of edit directions from :func:`save_directions`."""
    return json.loads(Path(path).read_text())["regions"]


__all__ = ["ChannelScores", "channel_scores", "edit_grid", "edit_styles", "gradient_maps", "load_directions",
           "mix_layers", "mixing_grid", "mixing_response", "region_masks", "sample_w_plus", "save_directions",
           "style_statistics"]
