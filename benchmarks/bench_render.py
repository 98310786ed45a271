"""Renderer speed: forward + backward time per 128x128 image for a 10k-vertex mesh.

A shaded render of a 10,242-vertex icosphere (radius 80 mm, bumped so shading varies) through the full
differentiable path (camera, rasterise, vertex normals, interpolate normals and albedo, SH shading,
L1 image loss, backward to vertices, albedo and SH coefficients). ``python benchmarks/bench_render.py``
prints the rows; ``run()`` returns them.
"""
from __future__ import annotations

import time

import torch
import trimesh

from facegen.render import (
    PerspectiveCamera,
    ambient_sh_coeffs,
    interpolate,
    rasterize,
    sh_shading,
    vertex_normals,
)

IMAGE_SIZE = 128
BATCH = 4


def _mesh(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=80.0)
    verts = torch.tensor(sphere.vertices, dtype=torch.float32)
    verts = verts * (1.0 + 0.05 * torch.sin(verts[:, :1] / 7.0) * torch.cos(verts[:, 1:2] / 9.0))
    return verts.to(device), torch.tensor(sphere.faces, device=device)


def _step(verts, faces, albedo, sh_coeffs, camera, target) -> None:
    ndc = camera.transform(verts)
    fragments = rasterize(ndc, faces, IMAGE_SIZE, perspective_correct=True)
    normals = torch.nn.functional.normalize(interpolate(vertex_normals(verts, faces), faces, fragments), dim=-1)
    image = interpolate(albedo, faces, fragments) * sh_shading(normals, sh_coeffs)
    loss = ((image - target).abs() * fragments.mask.unsqueeze(-1)).mean()
    loss.backward()


def _time(device: torch.device, repeats: int = 5) -> float:
    verts0, faces = _mesh(device)
    verts = verts0.expand(BATCH, -1, -1).clone().requires_grad_()
    albedo = torch.full((BATCH, verts0.shape[0], 3), 0.6, device=device, requires_grad=True)
    sh_coeffs = ambient_sh_coeffs(BATCH, device=device).requires_grad_()
    camera = PerspectiveCamera.framing(verts0, fov_degrees=12.0)
    target = torch.rand(BATCH, IMAGE_SIZE, IMAGE_SIZE, 3, device=device)
    _step(verts, faces, albedo, sh_coeffs, camera, target)           # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        _step(verts, faces, albedo, sh_coeffs, camera, target)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] / BATCH


def run() -> list[dict]:
    """Median forward+backward milliseconds per 128x128 image on one CPU thread (and CUDA when available).

    CPU is timed with ``torch.set_num_threads(1)`` (restored afterwards): on a shared machine more
    threads than free cores make OpenMP spin and the time meaningless.
    """
    params = {"vertices": 10242, "faces": 20480, "image_size": IMAGE_SIZE, "batch": BATCH}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu_ms = _time(torch.device("cpu")) * 1000.0
    finally:
        torch.set_num_threads(threads)
    rows = [{"name": "render_fwd_bwd_per_image", "device": "cpu (1 thread)", "value": round(cpu_ms, 2),
             "unit": "ms/image", "params": params}]
    if torch.cuda.is_available():
        rows.append({"name": "render_fwd_bwd_per_image", "device": torch.cuda.get_device_name(0),
                     "value": round(_time(torch.device("cuda")) * 1000.0, 2), "unit": "ms/image", "params": params})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
