"""Checkpoints written before the grouped constructors (facegen <= d915e12, flat keyword arguments) still load.

The one place that knows the old names: per LightningModule class, each flat hyper-parameter of the old
constructor -> its place in the grouped one (``"lr" -> "optimizer.lr"``). :func:`upgrade_hparams` rewrites an
old checkpoint's ``hyper_parameters`` (used by :meth:`facegen.models.base.FacegenModule.from_checkpoint`); new
checkpoints pass through unchanged.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from facegen.errors import CheckpointError

# class name -> {old flat key: "block.key" in the grouped constructor, or "" (dropped: no longer an argument)}
FLAT_KEYS: dict[str, dict[str, str]] = {
    "StyleGAN2": {},
    "FaceTuneGAN": {},
    "DFR": {"hidden": "network.hidden", "output_scale": "network.output_scale",
            "expression_bounds": "network.expression_bounds", "lambda_land": "loss.lambda_land",
            "lambda_reg": "loss.lambda_reg", "w_id": "loss.w_id", "w_exp": "loss.w_exp", "w_alb": "loss.w_alb",
            "lr": "optimizer.lr", "eval_projection_steps": "evaluation.projection_steps",
            "eval_truth_batch": "", "picture_count": "evaluation.picture_count"},
    "StyleRig": {"controls": "network.controls", "control_layers": "network.control_layers",
                 "latent_dim": "network.latent_dim", "decoder_hidden": "network.decoder_hidden",
                 "w_rec": "loss.w_rec", "w_edit": "loss.w_edit", "w_consist": "loss.w_consist",
                 "lambda_land": "loss.lambda_land", "lr": "optimizer.lr", "eval_pairs": "evaluation.pairs",
                 "grid_size": "evaluation.grid_size", "sweep_latents": "evaluation.sweep_latents",
                 "sweep_steps": "evaluation.sweep_steps"},
    "FaceRegressorModule": {"width": "network.width", "exp_bounds": "network.exp_bounds", "lr": "optimizer.lr",
                            "weight_decay": "optimizer.weight_decay", "augment": "augmentation.strength",
                            "loss_weights": "loss"},
}
# class name -> {block: defaults of a block the old constructor had no key for}
NEW_BLOCK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {}


def is_flat(class_name: str, hparams: Mapping[str, Any]) -> bool:
    """True when ``hparams`` hold an old flat key of ``class_name`` (and none of the grouped blocks)."""
    table = FLAT_KEYS.get(class_name, {})
    blocks = {target.split(".")[0] for target in table.values() if target}
    return any(key in table and "." in (table[key] or ".") for key in hparams) and not blocks & set(hparams)


def upgrade_hparams(class_name: str, hparams: Mapping[str, Any], source: str = "<checkpoint>") -> dict[str, Any]:
    """Grouped constructor arguments from a checkpoint's ``hyper_parameters`` (old flat or already grouped).

    Raises:
        CheckpointError: a flat checkpoint holds a key this table does not know (names ``source`` and the key).
    """
    hparams = dict(hparams)
    if not is_flat(class_name, hparams):
        return hparams
    table = FLAT_KEYS[class_name]
    out: dict[str, Any] = copy.deepcopy(NEW_BLOCK_DEFAULTS.get(class_name, {}))
    for key, value in hparams.items():
        if key not in table:
            out[key] = value  # data arguments (img_resolution, template_vertices, ...) keep their names
            continue
        target = table[key]
        if not target:
            continue
        block, _, name = target.partition(".")
        if not name:
            out[block] = value
            continue
        node = out.setdefault(block, {})
        for part in name.split(".")[:-1]:
            node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise CheckpointError(f"{source}: cannot place the old key {key!r} under {target!r}")
        node[name.split(".")[-1]] = value
    return out
