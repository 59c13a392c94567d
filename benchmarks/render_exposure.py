"""Exposure of the area-light rig: clipped and mean foreground per light-power range (needs bpy).

    python benchmarks/render_exposure.py --assets runs/default/assets/assets.parquet \
        --energy 150,600 --energy 25,100 --ambient 0.05,0.2

Prints one row per setting: per asset, the share of foreground pixels with a channel at >= 250 and
the mean foreground value (0..1). Used to calibrate ``render.lighting`` defaults.
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default="runs/default/assets/assets.parquet")
    parser.add_argument("--energy", action="append", default=None, help="area light W range 'lo,hi' (repeatable)")
    parser.add_argument("--ambient", default="0.05,0.2")
    parser.add_argument("--count", type=int, default=5, help="assets to render (one per category first)")
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--resolution", type=int, default=96)
    args = parser.parse_args()

    from lrm_dist.assets import read_asset_manifest
    from lrm_dist.config import load_config
    from lrm_dist.render.blender_worker import BlenderRenderer

    rows = read_asset_manifest(args.assets, only_ok=True).to_pylist()
    by_cat: dict[str, dict] = {}
    for r in rows:
        by_cat.setdefault(r["category"], r)
    picked = (list(by_cat.values()) + [r for r in rows if r not in by_cat.values()])[: args.count]
    print(f"{'area W':>12} {'ambient':>10}  " + "  ".join(f"{r['asset_id'][-14:]:>18}" for r in picked))
    for energy in args.energy or ["150,600", "25,100"]:
        cfg = load_config(None, [
            f"render.views={args.views}", f"render.resolution={args.resolution}", "render.samples=16",
            f"render.lighting.area_energy_w=[{energy}]", f"render.lighting.ambient=[{args.ambient}]",
            "render.lighting.presets={area_rig: 1.0}",
        ]).render
        renderer = BlenderRenderer(cfg, "exposure", threads=2)
        cells = []
        for record in picked:
            rgba = renderer.render(record)["rgba"]
            fg = rgba[..., :3][rgba[..., 3] > 250].astype(np.float64)
            cells.append(f"clip {np.mean(fg.max(-1) >= 250):.2f} mean {fg.mean() / 255:.2f}")
        renderer.close()
        print(f"{energy:>12} {args.ambient:>10}  " + "  ".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main()
