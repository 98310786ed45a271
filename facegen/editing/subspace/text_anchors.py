"""Text anchors for micromotion subspaces (Wu et al., CPAL 2024, sec. 3.3 step 1, text-anchored).

StyleCLIP latent optimisation (Patashnik et al., ICCV 2021, eq. 1; reference
orpatashnik/StyleCLIP ``optimization/run_optimization.py``): starting at a source W+ latent ``w_s``,
each prompt's latent ``w`` minimises::

    D_CLIP(G(w), prompt) + l2_lambda * ||w - w_s||^2 + id_lambda * (1 - <R(G(w)), R(G(w_s))>)

with Adam (lr 0.1) under the NVlabs ramp-up / cosine ramp-down schedule, where ``D_CLIP`` is one
minus the cosine similarity of CLIP's image and text embeddings. StyleCLIP's identity term ``R`` is
ArcFace; facegen has no ArcFace weights, so ``R`` defaults to CLIP's own image embedding (any
``identity_fn`` can be passed). The prompts are one template with degrees, in motion order, e.g.
``"a person with {} smile"`` with ``no, a slight, ..., 10%, ..., 100%, a big, ...``.

CLIP comes from a local open_clip checkpoint (optional dependency ``facegen[clip]``, i.e.
``open_clip_torch``); nothing is downloaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facegen.checkpoints import load
from facegen.editing.subspace.anchors import Anchors
from facegen.editing.subspace.decomposition import MicromotionError
from facegen.errors import CheckpointError, MissingWeightsError
from facegen.models.stylegan2.projection import learning_rate
from facegen.shapes import assert_shape

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)   # open_clip.constants.OPENAI_DATASET_MEAN
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_DEGREES = ("no", "a slight", "slight", "10%", "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%",
                   "100%", "a big", "big", "a large")


def degree_prompts(template: str = "a person with {} smile", degrees: Sequence[str] = DEFAULT_DEGREES) -> list[str]:
    """Prompts ``template.format(degree)`` in the given (motion) order, double spaces collapsed."""
    return [" ".join(template.format(d).split()) for d in degrees]


@dataclass
class ClipModel:
    """CLIP-shaped scorer: ``model.encode_image([B, 3, S, S] normalised)``, ``model.encode_text(tokens)``,
    ``tokenizer(list[str]) -> LongTensor``, input size ``image_size`` and normalisation ``mean``/``std``."""

    model: nn.Module
    tokenizer: Callable[[list[str]], Tensor]
    image_size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD

    def encode_images(self, images: Tensor) -> Tensor:
        """Unit image embeddings ``[B, D]`` of images ``[B, C, H, W]`` in [-1, 1] (grey repeated to RGB)."""
        x = (images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images) * 0.5 + 0.5
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return F.normalize(self.model.encode_image((x - mean) / std).float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, prompts: list[str], device: torch.device | str = "cpu") -> Tensor:
        """Unit text embeddings ``[len(prompts), D]``."""
        return F.normalize(self.model.encode_text(self.tokenizer(prompts).to(device)).float(), dim=-1)


def load_clip(model_name: str = "ViT-B-32", checkpoint_path: str | os.PathLike | None = None,
              device: str | torch.device = "cpu") -> ClipModel:
    """open_clip model ``model_name`` with weights from the local file ``checkpoint_path`` (eval, frozen).

    Raises:
        MissingWeightsError: the path is not set or absent, or open_clip is not installed.
        CheckpointError: the file is refused by :func:`facegen.checkpoints.load` or does not fit the model.
    """
    if checkpoint_path is None or not Path(checkpoint_path).is_file():
        raise MissingWeightsError(f"text anchors need a local open_clip checkpoint file: set clip.checkpoint_path "
                                  f"(got {checkpoint_path!r}).")
    # the weights go through facegen's one loading policy (weights_only=True), not through open_clip's torch.load
    state = load(checkpoint_path)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise CheckpointError(f"{checkpoint_path}: expected an open_clip state dict, got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        import open_clip  # optional: pip install "facegen[clip]"
    except ImportError as error:
        raise MissingWeightsError("text anchors need the optional package open_clip: pip install 'facegen[clip]' "
                                  "(open_clip_torch).") from error
    model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=None, device=device)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"{checkpoint_path}: its weights do not fit open_clip {model_name}: "
                              f"{str(error).splitlines()[0][:300]}") from None
    model = model.to(device).eval().requires_grad_(False)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    mean = getattr(model.visual, "image_mean", None) or OPENAI_MEAN
    std = getattr(model.visual, "image_std", None) or OPENAI_STD
    return ClipModel(model=model, tokenizer=open_clip.get_tokenizer(model_name), image_size=int(size),
                     mean=tuple(mean), std=tuple(std))


def text_anchors(G: nn.Module, w_source: Tensor, prompts: Sequence[str], clip: ClipModel, num_steps: int = 100,
                 initial_learning_rate: float = 0.1, l2_lambda: float = 0.008, id_lambda: float = 0.005,
                 identity_fn: Callable[[Tensor], Tensor] | None = None, lr_rampdown_length: float = 0.25,
                 lr_rampup_length: float = 0.05, log: Callable[[int, Tensor], None] | None = None) -> Anchors:
    """One W+ anchor per prompt by StyleCLIP latent optimisation from ``w_source`` (see the module docstring).

    All prompts are optimised together (one latent each; Adam is per-element, so this equals separate
    runs). ``final_distance`` is the CLIP distance ``1 - cos`` per prompt at the end.

    Args:
        w_source: ``[1, num_ws, w_dim]`` (or ``[num_ws, w_dim]``) source latent.
        identity_fn: images ``[B, C, H, W]`` -> features ``[B, D]`` for the identity term (default CLIP's).
        log: ``log(step, clip distance [P])`` after every step.

    Raises:
        MicromotionError: ``w_source`` is not ``[1, num_ws, w_dim]`` (or ``[num_ws, w_dim]``) of ``G``.
    """
    w_source = w_source[None] if w_source.ndim == 2 else w_source
    assert_shape(w_source, [1, G.num_ws, G.w_dim], "w_source", error=MicromotionError,
                 hint="one W+ latent of G (or [num_ws, w_dim])")
    G = G.eval().requires_grad_(False)
    device = next(G.parameters()).device
    clip.model.to(device).eval().requires_grad_(False)
    prompts = list(prompts)
    w_source = w_source.detach().to(device)
    text = clip.encode_texts(prompts, device)                                      # [P, D]
    identity_fn = identity_fn or clip.encode_images
    with torch.no_grad():
        source_image = G.synthesis(w_source, noise_mode="const")
        source_id = F.normalize(identity_fn(source_image).float(), dim=-1)         # [1, D]
    w = w_source.repeat(len(prompts), 1, 1).clone().requires_grad_(True)          # [P, num_ws, w_dim]
    optimizer = torch.optim.Adam([w], lr=initial_learning_rate)
    for step in range(num_steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step / num_steps, initial_learning_rate, lr_rampdown_length, lr_rampup_length)
        images = G.synthesis(w, noise_mode="const")
        clip_distance = 1 - (clip.encode_images(images) * text).sum(dim=-1)         # [P]
        l2 = (w - w_source).square().sum(dim=(1, 2))
        loss = clip_distance + l2_lambda * l2
        if id_lambda:
            loss = loss + id_lambda * (1 - (F.normalize(identity_fn(images).float(), dim=-1) * source_id).sum(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        if log is not None:
            log(step, clip_distance.detach())
    w = w.detach()
    with torch.no_grad():
        images = G.synthesis(w, noise_mode="const")
        final = 1 - (clip.encode_images(images) * text).sum(dim=-1)
    return Anchors(w_plus=w.cpu(), images=images.cpu(), targets=source_image.expand_as(images).cpu(),
                   frame_index=np.arange(len(prompts)), final_distance=final.cpu(), noise={},
                   source="text: " + " | ".join(prompts))
