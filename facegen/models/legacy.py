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
    "StyleGAN2": {
        **{k: f"generator.{k}" for k in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max",
                                          "num_fp16_res", "conv_clamp")},  # the discriminator shares the sizes
        "mbstd_group_size": "discriminator.mbstd_group_size",
        "lr": "optimizer.lr", "betas": "optimizer.betas",
        **{k: f"loss.{k}" for k in ("r1_gamma", "r1_interval", "pl_weight", "pl_interval", "pl_decay",
                                     "pl_batch_shrink", "style_mixing_prob")},
        "augment_pipeline": "augment.pipeline", "augment_p": "augment.p", "ada_target": "augment.target",
        "ada_interval": "augment.interval", "ada_kimg": "augment.kimg",
        "ema_kimg": "ema.kimg", "ema_rampup": "ema.rampup",
        **{f"grid_{k}": f"grid.{k}" for k in ("every_kimg", "rows", "cols", "seed", "truncation_psi")},
        "region_weight": "region.weight", "regions": "region.regions", "region_landmarks": "region.landmarks",
        "region_template_box": "region.template_box", "region_crop": "region.crop", "region_margin": "region.margin",
    },
    "FaceTuneGAN": {  # the blocks come without _target_: FaceTuneGAN completes its Generator/Discriminator/Adam
        "channels": "generator.channels", "style_channels": "generator.style_channels",
        "content_dim": "generator.content_dim", "style_dim": "generator.style_dim",
        "mapping_hidden": "generator.mapping_hidden", "content_hidden": "generator.content_hidden",
        "style_hidden": "generator.style_hidden", "decoder_hidden": "generator.decoder_hidden",
        "output_init": "generator.output_init", "decoder_skip": "generator.decoder_skip",
        "style_skip": "generator.style_skip", "content_skip": "generator.content_skip",
        "disc_channels": "discriminator.channels",
        "down_factors": "hierarchy.down_factors", "seq_length": "hierarchy.seq_length",
        "dilation": "hierarchy.dilation",
        "lambda_rec": "loss.lambda_rec", "lambda_cycle": "loss.lambda_cycle", "lambda_srec": "loss.lambda_srec",
        "lambda_adv": "loss.lambda_adv", "lambda_feat": "loss.lambda_feat", "lambda_lap": "loss.lambda_lap",
        "r1_gamma": "loss.r1_gamma", "lambda_pair": "loss.lambda_pair", "loss_space": "loss.loss_space",
        "lr": "optimizer.lr", "weight_decay": "optimizer.weight_decay", "betas": "optimizer.betas",
        "lr_decay_batches": "schedule.lr_decay_batches", "lr_final_fraction": "schedule.lr_final_fraction",
        "val_triplets": "evaluation.val_triplets", "eval_triplets": "evaluation.eval_triplets",
        "seed": "evaluation.seed",
    },
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
NEW_BLOCK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "StyleGAN2": {"generator": {"_target_": "facegen.models.stylegan2.Generator"},
                  "discriminator": {"_target_": "facegen.models.stylegan2.Discriminator"},
                  "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "eps": 1e-8}},
}


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
