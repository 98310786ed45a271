"""Micromotion subspaces (Wu et al., "Decoding Micromotion in Low-dimensional Latent Spaces from StyleGAN", CPAL 2024).

Anchors of one identity (video frames inverted into W+, or StyleCLIP text optimisation) ->
per-layer robust PCA and a rank-k subspace -> edit direction ``dV`` -> ``G(V_0 + alpha * t * dV)``
for any latent. Reference code: wuqiuche/micromotion-StyleGAN.
"""
from facegen.editing.subspace.anchors import (
    Anchors,
    crop_frames,
    ffhq_quad,
    invert_frames,
    read_video,
    video_anchors,
)
from facegen.editing.subspace.apply import (
    edit_latents,
    edit_strengths,
    frame_grid,
    layer_mask,
    render_edit,
    save_grid,
    seed_latents,
    to_frames,
)
from facegen.editing.subspace.decomposition import (
    AnchorDecomposition,
    MicromotionError,
    decompose_anchors,
    pca_subspace,
    pcp_lambda,
    robust_pca,
)
from facegen.editing.subspace.direction import (
    METHODS,
    MicromotionDirection,
    decode_direction,
    generator_sha1,
    load_direction,
    save_direction,
)

__all__ = ["METHODS", "AnchorDecomposition", "Anchors", "MicromotionDirection", "MicromotionError", "crop_frames",
           "decode_direction", "decompose_anchors", "edit_latents", "edit_strengths", "ffhq_quad", "frame_grid",
           "generator_sha1", "invert_frames", "layer_mask", "load_direction", "pca_subspace", "pcp_lambda",
           "read_video", "render_edit", "robust_pca", "save_direction", "save_grid", "seed_latents", "to_frames",
           "video_anchors"]
