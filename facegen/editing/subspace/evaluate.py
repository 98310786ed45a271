"""Face-world evaluation of micromotion transfer (issue 6): decode an expression direction from ONE
synthetic identity's expression clip, apply it to other generated identities, and measure with a
face-parameter regressor that the target expression rises monotonically with ``t`` while identity stays.

Pipeline (:func:`face_world_evaluation`):

1. :func:`facegen.data.synthetic.write_expression_videos` renders one clip, neutral -> ``expression``
   at full strength, with the ground-truth intensity per frame (0..1).
2. ``anchor_count`` evenly spaced frames (the lossless PNGs) are inverted into W+ (warm-started
   projection, :func:`facegen.editing.subspace.anchors.invert_frames`; the generator's constant
   noise maps are kept, ``optimize_noise=False``, as when the direction is applied).
3. Directions: ``rpca`` (robust PCA + rank-k, the paper), ``pca`` (rank-k PCA), ``two_anchor`` (last
   minus first anchor), and ``random`` (a control: Gaussian, rescaled per layer to the rpca norm).
4. Each direction is applied to ``seeds`` (W of ``np.random.RandomState(seed)`` z, as facegen.generate)
   at strengths ``alpha * linspace(0, 1, num_frames)``.
5. The regressor (``facegen.models.face_regressor``) predicts ``exp``/``id``/``rotation`` per frame.
   The target intensity is the projection of ``exp`` on the preset ``p`` of ``expression``:
   ``<exp, p> / <p, p>`` (1 = the clip's last frame).

Metrics per method and alpha (means over identities): ``rho`` Spearman correlation of intensity and
``t``; ``frac_rho>0.9``; ``d_intensity`` intensity at ``t = 1`` minus ``t = 0``; ``id_drift``
``||id(1) - id(0)||`` over the mean pairwise identity distance of the neutral identities;
``off_target`` norm of the expression change orthogonal to ``p`` over ``||p||``; ``rot_drift_deg``; ``id_dlib``
dlib's identity distance (:func:`facegen.faces.paired_identity_distances`, 128-D descriptor, < 0.6 = same
person) between the source frame ``t = 0`` and the edited frame ``t = 1``, mean over the identities where dlib
finds a face in both; ``id_dlib_no_face`` counts the others (the cell reads "no face" when none has one, as at
64 px on many face-world renders: never a made-up number).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Sequence

import imageio.v3 as iio
import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

from facegen.data.synthetic import write_expression_videos
from facegen.editing.subspace.anchors import frames_to_targets, invert_frames
from facegen.editing.subspace.apply import (
    edit_strengths,
    render_edit,
    save_grid,
    seed_latents,
)
from facegen.editing.subspace.direction import (
    MicromotionDirection,
    decode_direction,
    generator_sha1,
    save_direction,
)
from facegen.faces import FaceModelsMissing, paired_identity_distances
from facegen.models.face_regressor import load_face_regressor
from facegen.models.stylegan2.formats import load_generator
from facegen.morphable import ProceduralFaceModel
from facegen.utils import atomic_write

log = logging.getLogger("facegen.micromotion.evaluate")
METRICS = ("rho", "frac_rho>0.9", "d_intensity", "id_drift", "off_target", "rot_drift_deg", "id_dlib")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (scipy); 0 when ``y`` is constant."""
    if np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)


def intensity(exp: Tensor, preset: Tensor) -> Tensor:
    """Target-expression intensity ``<exp, p> / <p, p>`` ``[...]`` of coefficients ``exp [..., K_exp]``."""
    preset = preset.to(exp)
    return (exp * preset).sum(-1) / preset.square().sum()


def random_direction(reference: MicromotionDirection, seed: int = 0) -> MicromotionDirection:
    """Gaussian direction with the per-layer norms of ``reference`` (a chance-level control)."""
    rng = np.random.default_rng(seed)
    dv = rng.standard_normal(reference.dv.shape).astype(np.float32)
    dv *= np.linalg.norm(reference.dv, axis=1, keepdims=True) / np.linalg.norm(dv, axis=1, keepdims=True)
    return MicromotionDirection(dv=dv, layers=reference.layers, alpha_range=reference.alpha_range, method="random",
                                rank=0, source=f"random control, seed {seed}", generator_sha1=reference.generator_sha1)


def dlib_identity_metrics(source: Tensor, edited: Tensor) -> dict:
    """``id_dlib`` (mean dlib identity distance of ``source[i]`` vs ``edited[i]``, ``[S, C, H, W]`` in [-1, 1]; NaN
    when no pair has faces), ``id_dlib_no_face`` (pairs without a face in either image) and ``id_dlib_pairs``.
    Without dlib installed: NaN, every pair counted as without a face, and a log line saying what to install."""
    try:
        comparison = paired_identity_distances(source, edited)
    except FaceModelsMissing as error:
        log.warning("id_dlib not measured: %s", error)
        return {"id_dlib": float("nan"), "id_dlib_no_face": int(source.shape[0]), "id_dlib_pairs": int(source.shape[0])}
    return {"id_dlib": comparison.mean, "id_dlib_no_face": comparison.no_face, "id_dlib_pairs": comparison.n}


def transfer_metrics(regressor: nn.Module, frames: Tensor, preset: Tensor, batch_size: int = 64,
                     identity_dlib: bool = True) -> dict:
    """Metrics of edited frames ``[S, T, C, H, W]`` (one row per identity, ``t`` along T); see the module docstring.

    ``identity_dlib``: also dlib's identity distance between ``t = 0`` and ``t = 1`` (:func:`dlib_identity_metrics`;
    about 0.1-0.3 s per image on one CPU core); off: ``id_dlib`` NaN with every pair counted as not measured.
    """
    S, T = frames.shape[:2]
    flat = frames.reshape(S * T, *frames.shape[2:])
    preds = [regressor.predict(flat[i:i + batch_size]) for i in range(0, len(flat), batch_size)]
    exp = torch.cat([p["exp"] for p in preds]).view(S, T, -1).cpu()
    ident = torch.cat([p["id"] for p in preds]).view(S, T, -1).cpu()
    rot = torch.cat([p["rotation"] for p in preds]).view(S, T, -1).cpu()
    level = intensity(exp, preset)                                                  # [S, T]
    t = np.arange(T)
    rhos = np.array([spearman(t, level[s].numpy()) for s in range(S)])
    spread = torch.cdist(ident[:, 0], ident[:, 0])
    spread = float(spread.sum() / max(1, S * (S - 1)))
    change = exp[:, -1] - exp[:, 0]                                                 # [S, K_exp]
    p = preset.to(change)
    off = change - ((change * p).sum(-1, keepdim=True) / p.square().sum()) * p
    return {
        "rho": float(rhos.mean()), "frac_rho>0.9": float((rhos > 0.9).mean()),
        "d_intensity": float((level[:, -1] - level[:, 0]).mean()),
        "id_drift": float((ident[:, -1] - ident[:, 0]).norm(dim=-1).mean()) / max(spread, 1e-12),
        "off_target": float(off.norm(dim=-1).mean() / p.norm()),
        "rot_drift_deg": float(np.degrees(float((rot[:, -1] - rot[:, 0]).norm(dim=-1).mean()))),
        "intensity_curve": level.mean(0).tolist(), "rho_per_identity": rhos.tolist(),
        **(dlib_identity_metrics(frames[:, 0], frames[:, -1]) if identity_dlib else
           {"id_dlib": float("nan"), "id_dlib_no_face": S, "id_dlib_pairs": S}),
    }


def _cell(row: dict, metric: str) -> str:
    value = row.get(metric, float("nan"))
    if metric == "id_dlib":
        pairs, missing = row.get("id_dlib_pairs", 0), row.get("id_dlib_no_face", 0)
        if not np.isfinite(value):
            return f"no face ({missing}/{pairs})"
        return f"{value:.3f} ({missing}/{pairs} no face)" if missing else f"{value:.3f}"
    return f"{value:.3f}"


def markdown_table(rows: list[dict]) -> str:
    """``| method | alpha | metrics... |`` Markdown table of evaluation rows (``id_dlib``: "no face (k/n)" when dlib
    found no face pair, else the mean with the count of pairs left out)."""
    lines = ["| method | alpha | " + " | ".join(METRICS) + " |", "|" + "---|" * (len(METRICS) + 2)]
    for row in rows:
        lines.append(f"| {row['method']} | {row['alpha']:g} | " + " | ".join(_cell(row, m) for m in METRICS) + " |")
    return "\n".join(lines) + "\n"


def face_world_evaluation(G: nn.Module, regressor: nn.Module, out: str | Path, expression: str = "smile",
                          clip_seed: int = 0, clip_frames: int = 16, anchor_count: int = 8, num_steps: int = 200,
                          warm_steps: int = 60, warm_start: bool = True, w_avg_samples: int = 2000,
                          optimize_noise: bool = False, latent_space: str = "w_plus",
                          seeds: Sequence[int] = tuple(range(1000, 1024)), truncation_psi: float = 0.7,
                          num_frames: int = 8, alphas: Sequence[float] = (1.0, 2.0), rank: int = 4,
                          methods: Sequence[str] = ("rpca", "pca", "two_anchor", "random"), model=None,
                          seed: int = 0, identity_dlib: bool = True) -> list[dict]:
    """Run the evaluation of the module docstring; write its files into ``out``; return the table rows.

    Files: ``clip/`` (the synthetic clip), ``anchors.npz`` + ``anchors.png`` (targets over
    reconstructions), ``direction_<method>.npz``, ``grid_<method>_a<alpha>.png``, ``table.md``,
    ``results.json`` (rows, intensity curves, anchor diagnostics, settings, seconds).
    """
    start_time = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model or ProceduralFaceModel(seed=0)
    preset = model.expression_presets[expression].float()
    G = G.eval()
    device = next(G.parameters()).device

    # 1-2: one identity's clip, anchors in motion order
    write_expression_videos(out / "clip", n=1, resolution=G.img_resolution, frames=clip_frames, seed=clip_seed,
                            expressions=[expression], model=model)

    index = np.round(np.linspace(0, clip_frames - 1, anchor_count)).astype(int)
    pngs = np.stack([iio.imread(out / "clip" / "clip_0000" / f"{i:04d}.png")[..., :3] for i in index])
    gt = np.load(out / "clip" / "clip_0000.npz")["intensity"][index]
    targets = frames_to_targets(pngs, G.img_channels).to(device)
    w_plus, images, distance, _ = invert_frames(G, targets, num_steps=num_steps, warm_start=warm_start,
                                                warm_steps=warm_steps, seed=seed, w_avg_samples=w_avg_samples,
                                                optimize_noise=optimize_noise, latent_space=latent_space,
                                                log=log.info)
    np.savez(out / "anchors.npz", w_plus=w_plus.cpu().numpy(), frame_index=index, intensity=gt,
             final_distance=distance.numpy())
    save_grid(out / "anchors.png", torch.stack([targets.cpu(), images.cpu()]))
    # the regressor on the clip itself and on its reconstructions (are the anchors' expressions there?)
    level_clip = intensity(regressor.predict(targets.cpu())["exp"].cpu(), preset).numpy()
    level_recon = intensity(regressor.predict(images.cpu())["exp"].cpu(), preset).numpy()
    diagnostics = {"gt_intensity": gt.tolist(), "regressor_on_clip": level_clip.tolist(),
                   "regressor_on_anchor_reconstructions": level_recon.tolist(),
                   "rho_clip": spearman(gt, level_clip), "rho_reconstructions": spearman(gt, level_recon),
                   "projection_distance": distance.tolist(), "projection_seconds": time.perf_counter() - start_time}
    log.info("anchors: regressor rho on clip %.3f, on reconstructions %.3f", diagnostics["rho_clip"],
             diagnostics["rho_reconstructions"])

    # 3: directions
    sha1 = generator_sha1(G)
    source = f"face world clip seed {clip_seed}, {expression}, frames {index.tolist()}"
    directions: dict[str, MicromotionDirection] = {}
    for method in methods:
        if method == "random":
            continue
        directions[method] = decode_direction(w_plus, method=method, rank=rank, source=source, generator_sha1=sha1)
    if "random" in methods:
        reference = directions.get("rpca") or decode_direction(w_plus, "rpca", rank=rank)
        directions["random"] = random_direction(reference, seed=seed)
    for method, direction in directions.items():
        save_direction(out / f"direction_{method}.npz", direction)

    # 4-5: transfer to other identities, measured by the regressor
    w0 = seed_latents(G, seeds, truncation_psi)
    rows = []
    for alpha in alphas:
        for method, direction in directions.items():
            frames = render_edit(G, w0, direction, edit_strengths(direction, num_frames, alpha=alpha))
            metrics = transfer_metrics(regressor, frames, preset, identity_dlib=identity_dlib)
            rows.append({"method": method, "alpha": float(alpha), **metrics,
                         "dv_norm": float(np.linalg.norm(direction.dv))})
            save_grid(out / f"grid_{method}_a{alpha:g}.png", frames[:6])
            log.info("%s alpha %g: rho %.3f d_intensity %.3f id_drift %.3f id_dlib %.3f (%d/%d without a face)",
                     method, alpha, metrics["rho"], metrics["d_intensity"], metrics["id_drift"], metrics["id_dlib"],
                     metrics["id_dlib_no_face"], metrics["id_dlib_pairs"])
    table = markdown_table(rows) + (
        f"\nReference: the regressor on the source clip's anchor frames (ground truth 0 -> 1): rho "
        f"{diagnostics['rho_clip']:.3f}, d_intensity {level_clip[-1] - level_clip[0]:.3f}; on their "
        f"reconstructions ({latent_space}): rho {diagnostics['rho_reconstructions']:.3f}, d_intensity "
        f"{level_recon[-1] - level_recon[0]:.3f}.\n")
    if identity_dlib and len(seeds) > 1:
        # scale of id_dlib: the source clip's first vs last anchor frame (one identity), and two different identities
        start_images = render_edit(G, w0, next(iter(directions.values())), torch.zeros(1))[:, 0]
        clip_pair = dlib_identity_metrics(targets[:1].cpu(), targets[-1:].cpu())
        others = dlib_identity_metrics(start_images, start_images.roll(1, 0))
        diagnostics.update(id_dlib_clip=clip_pair, id_dlib_other_identities=others)
        table += (f"\nid_dlib reference: source clip frame 0 vs its last anchor frame "
                  f"{_cell(clip_pair, 'id_dlib')}; two different generated identities {_cell(others, 'id_dlib')} "
                  f"(dlib: < 0.6 = same person).\n")
    atomic_write(out / "table.md", table)
    settings = dict(expression=expression, clip_seed=clip_seed, clip_frames=clip_frames, anchor_count=anchor_count,
                    num_steps=num_steps, warm_steps=warm_steps, warm_start=warm_start, w_avg_samples=w_avg_samples,
                    optimize_noise=optimize_noise, latent_space=latent_space,
                    seeds=list(seeds), truncation_psi=truncation_psi, num_frames=num_frames, alphas=list(alphas),
                    rank=rank, generator_sha1=sha1, identity_dlib=identity_dlib)
    atomic_write(out / "results.json", json.dumps({"rows": rows, "anchors": diagnostics, "settings": settings,
                                                   "seconds": time.perf_counter() - start_time}, indent=1))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m facegen.editing.subspace.evaluate --generator G.ckpt --regressor R.pt --out DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", required=True, help="face-world StyleGAN2 checkpoint (any load_generator format)")
    parser.add_argument("--regressor", required=True, help="face regressor file (facegen.models.face_regressor)")
    parser.add_argument("--out", default="runs/micromotion/face_world_eval")
    parser.add_argument("--expression", default="smile")
    parser.add_argument("--clip-seed", type=int, default=0)
    parser.add_argument("--anchor-count", type=int, default=8)
    parser.add_argument("--num-steps", type=int, default=200)
    parser.add_argument("--warm-steps", type=int, default=60)
    parser.add_argument("--identities", type=int, default=24, help="seeds 1000 .. 1000 + identities - 1")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--truncation-psi", type=float, default=0.7)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--optimize-noise", action="store_true", help="anchors: optimise noise maps (NVlabs)")
    parser.add_argument("--w-avg-samples", type=int, default=2000)
    parser.add_argument("--latent-space", default="w_plus", choices=["w_plus", "w"], help="anchor inversion space")
    parser.add_argument("--no-identity-dlib", action="store_true", help="skip dlib's identity distance column")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    G, _ = load_generator(args.generator)
    rows = face_world_evaluation(G, load_face_regressor(args.regressor), args.out, expression=args.expression,
                                 clip_seed=args.clip_seed, anchor_count=args.anchor_count, num_steps=args.num_steps,
                                 warm_steps=args.warm_steps, seeds=range(1000, 1000 + args.identities),
                                 num_frames=args.num_frames, alphas=args.alphas, truncation_psi=args.truncation_psi,
                                 rank=args.rank, optimize_noise=args.optimize_noise,
                                 w_avg_samples=args.w_avg_samples, latent_space=args.latent_space,
                                 identity_dlib=not args.no_identity_dlib)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
