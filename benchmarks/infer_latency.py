"""Image -> GLB latency of the LRM inference pipeline, split by step, as a table.

Steps: preprocess (decode + recentre), triplane (encoder + transformer + upsampler), grid (density
on R^3, factorised triplane query), mesh (marching cubes on the CPU or surface nets on the device,
cropped to the occupied box), colours
(vertex colour query), export (GLB bytes). Random weights unless ``--model`` names a checkpoint. A random
network's density is noise whose iso-surface has millions of faces, nothing like an object's, and
mesh, colours and export scale with the face count; so by default (``--surface chair``) those steps
run on the density of an analytic chair (boxes, soft edges) at the same resolution, while triplane
and grid are always the network's. ``--surface model`` meshes the network's own field at the density
quantile that leaves ``--occupancy`` of the grid inside (the worst case). The face count is printed.

    python benchmarks/infer_latency.py --size small --resolution 256            # CUDA: bf16 autocast
    python benchmarks/infer_latency.py --size small --resolution 256 --compile
    python benchmarks/infer_latency.py --size tiny --resolution 64 --device cpu  # CPU smoke run
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
import torch
from PIL import Image

from lrm_dist.device import DEVICES, PRECISIONS
from lrm_dist.model.config import SIZES
from lrm_dist.model.lrm import LRM
from lrm_dist.serve.config import ServeConfig
from lrm_dist.reconstruct.extract import MESHERS, build_mesh, density_grid, vertex_colours
from lrm_dist.reconstruct.mesh_files import mesh_bytes
from lrm_dist.serve.infer import ImageToMesh
from lrm_dist.serve.preprocess import prepare_image

STEPS = ("preprocess", "triplane", "grid", "mesh", "colours", "export")


def test_image_bytes(side: int = 512) -> bytes:
    """An RGBA PNG of a shaded disc on a transparent background (what a cut-out photo looks like)."""
    yy, xx = np.mgrid[:side, :side] / side - 0.5
    inside = (xx**2 + yy**2) < 0.3**2
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[..., 0] = (255 * (0.5 + xx)).clip(0, 255)
    rgba[..., 1] = (255 * (0.5 + yy)).clip(0, 255)
    rgba[..., 2] = 128
    rgba[..., 3] = inside * 255
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def chair_density(resolution: int, device: torch.device) -> torch.Tensor:
    """Density (0 outside, 20 inside, ~1 voxel soft edge) of a chair in the canonical frame: seat, legs, back."""
    c = torch.linspace(-1, 1, resolution, device=device)
    p = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1)
    boxes = [((0, 0, 0), (0.45, 0.45, 0.05)), ((0, 0.4, 0.475), (0.45, 0.05, 0.425))]
    boxes += [((sx * 0.4, sy * 0.4, -0.475), (0.05, 0.05, 0.425)) for sx in (-1, 1) for sy in (-1, 1)]
    sdf = None
    for centre, half in boxes:
        q = (p - torch.tensor(centre, device=device)).abs() - torch.tensor(half, device=device)
        d = q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)
        sdf = d if sdf is None else torch.minimum(sdf, d)
    return 20.0 * torch.sigmoid(-sdf * resolution / 2)


def run_once(recon: ImageToMesh, png: bytes, surface: torch.Tensor | None) -> tuple[dict[str, float], int]:
    """One image -> GLB pass (``ImageToMesh.reconstruct``'s steps, timed); ``surface`` replaces the
    network's grid for the mesh steps when given. Returns seconds per step and the face count."""
    cfg, synth = recon.cfg, recon.model.synthesizer
    t0 = time.perf_counter()
    image = prepare_image(png, recon.source_size, recon.foreground_ratio, "auto", name="benchmark image")
    t1 = sync(recon.device)
    planes = recon.planes(image)
    t2 = sync(recon.device)
    with torch.no_grad(), torch.autocast(recon.device.type, dtype=recon.recon.dtype, enabled=recon.recon.dtype != torch.float32):
        grid = recon.recon._grid_fn(synth, planes, cfg.mesh_resolution, recon.recon._grid_chunk)
    t3 = sync(recon.device)
    verts, faces = MESHERS[cfg.mesher](grid if surface is None else surface, cfg.density_threshold or 3.0)
    t4 = sync(recon.device)
    with torch.no_grad(), torch.autocast(recon.device.type, dtype=recon.recon.dtype, enabled=recon.recon.dtype != torch.float32):
        mesh = build_mesh(verts, faces, vertex_colours(synth, planes, verts))
    t5 = sync(recon.device)
    mesh_bytes(mesh, "glb")
    t6 = time.perf_counter()
    steps = {"preprocess": t1 - t0, "triplane": t2 - t1, "grid": t3 - t2, "mesh": t4 - t3, "colours": t5 - t4}
    return {**steps, "export": t6 - t5}, len(faces)


def naive_grid_seconds(recon: ImageToMesh, planes: torch.Tensor, resolution: int, repeats: int) -> float:
    """Median seconds of the per-point grid query (grid_sample at every grid point), for comparison."""
    c = torch.linspace(-1, 1, resolution, device=recon.device)
    times = []
    for _ in range(repeats):
        t0 = sync(recon.device)
        with torch.no_grad(), torch.autocast(recon.device.type, dtype=recon.recon.dtype, enabled=recon.recon.dtype != torch.float32):
            for i in range(resolution):
                pts = torch.stack(torch.meshgrid(c[i : i + 1], c, c, indexing="ij"), -1).reshape(1, -1, 3)
                recon.model.synthesizer.density(planes[None], pts)
        times.append(sync(recon.device) - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--model", default=None, help="pretrained folder (default: random weights)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--compile", action="store_true", help="torch.compile triplane network and grid query")
    parser.add_argument("--mesher", default="marching_cubes", choices=["marching_cubes", "surface_nets"])
    parser.add_argument("--grid-chunk", type=int, default=None, help="grid points per pass (default: by device)")
    parser.add_argument("--surface", default="chair", choices=["chair", "model"],
                        help="what the mesh steps run on with random weights (see above)")
    parser.add_argument("--occupancy", type=float, default=0.05, help="grid fraction inside (--surface model)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--naive-grid", action="store_true", help="also time the per-point grid query")
    args = parser.parse_args()

    torch.manual_seed(0)
    if args.model:
        from lrm_dist.model.pretrained import from_pretrained

        model = from_pretrained(args.model)
    else:
        model = LRM(SIZES[args.size])
    cfg = ServeConfig(mesh_resolution=args.resolution, device=args.device, precision=args.precision,
                      compile=args.compile, grid_chunk=args.grid_chunk, mesher=args.mesher)
    recon = ImageToMesh(model, cfg)
    png = test_image_bytes()
    surface = None
    if not args.model and args.surface == "chair":
        surface = chair_density(args.resolution, recon.device)
    elif not args.model:  # pick the iso-level that leaves --occupancy of the grid inside
        planes = recon.planes(prepare_image(png, recon.source_size, name="benchmark image"))
        with torch.no_grad(), torch.autocast(recon.device.type, dtype=recon.recon.dtype, enabled=recon.recon.dtype != torch.float32):
            grid = density_grid(model.synthesizer, planes, args.resolution, args.grid_chunk)
        level = float(torch.quantile(grid.flatten()[:: max(1, grid.numel() // 1_000_000)].float(), 1 - args.occupancy))
        recon.cfg = cfg.model_copy(update={"density_threshold": level})

    for _ in range(args.warmup):
        run_once(recon, png, surface)
    runs, faces = [], 0
    for _ in range(args.repeats):
        timing, faces = run_once(recon, png, surface)
        runs.append(timing)
    med = {k: 1000 * statistics.median(r[k] for r in runs) for k in STEPS}
    total = 1000 * statistics.median(sum(r.values()) for r in runs)

    device = torch.cuda.get_device_name(recon.device) if recon.device.type == "cuda" else "cpu"
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"# {args.size} ({params:.0f}M params), {device}, {str(recon.recon.dtype).removeprefix('torch.')}, "
          f"compile={args.compile}, {args.mesher}, grid {args.resolution}^3, "
          f"mesh of {'a checkpoint' if args.model else args.surface}: {faces} faces, torch {torch.__version__}")
    print("| " + " | ".join(STEPS) + " | total (ms) |")
    print("|" + "---|" * (len(STEPS) + 1))
    print("| " + " | ".join(f"{med[k]:.1f}" for k in STEPS) + f" | {total:.1f} |")
    if args.naive_grid:
        planes = recon.planes(prepare_image(png, recon.source_size, name="benchmark image"))
        naive = 1000 * naive_grid_seconds(recon, planes, args.resolution, max(1, args.repeats // 3))
        print(f"per-point grid query (for comparison): {naive:.1f} ms vs factorised {med['grid']:.1f} ms")


if __name__ == "__main__":
    main()
