"""Shard encodings side by side: bytes per asset, what lossy WebP costs in pixels, encode and decode time.

Reads samples of existing shards (``decode_sample``), writes each again with every encoding of the
``shards`` settings (``image_format``, ``webp_quality``, ``normal_maps``) through ``encode_sample``,
decodes that back, and prints one row per encoding: bytes per asset and against PNG, the rgba's
premultiplied PSNR and largest alpha error against the stored PNG, and the time per asset.

    python benchmarks/shard_encoding.py --shards runs/default/render/shards --assets 32
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lrm_dist.shards.config import ShardsConfig
from lrm_dist.shards.sample import decode_sample, encode_sample

ENCODINGS = {
    "png (default)": {},
    "png, no normal maps": {"normal_maps": False},
    "webp lossless": {"image_format": "webp"},
    "webp lossless, no normal maps": {"image_format": "webp", "normal_maps": False},
    "webp q95": {"image_format": "webp", "webp_quality": 95},
    "webp q95, no normal maps": {"image_format": "webp", "webp_quality": 95, "normal_maps": False},
    "webp q90, no normal maps": {"image_format": "webp", "webp_quality": 90, "normal_maps": False},
}


def _raw(members: dict[str, bytes]) -> dict:
    return {"__key__": next(iter(members)).split(".", 1)[0], **{k.split(".", 1)[1]: v for k, v in members.items()}}


def _samples(shards: Path, limit: int) -> list[dict]:
    from lrm_dist.shards.reader import read_raw_samples

    out = []
    for url in sorted(shards.glob("*.tar")):
        for raw in read_raw_samples(str(url), lambda name: True):
            out.append(decode_sample(raw))
            if len(out) == limit:
                return out
    return out


def _psnr(got: np.ndarray, want: np.ndarray) -> float:
    """PSNR of the colour as training sees it (premultiplied by alpha) over the object's pixels."""
    fg = want[..., 3] > 0
    if not fg.any():
        return float("inf")
    premultiplied = [x[..., :3].astype(np.float64) * x[..., 3:].astype(np.float64) / 255.0 for x in (got, want)]
    mse = float(((premultiplied[0] - premultiplied[1]) ** 2)[fg].mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", required=True, type=Path, help="a render stage's shard folder")
    parser.add_argument("--assets", type=int, default=32, help="samples to re-encode")
    args = parser.parse_args()
    samples = _samples(args.shards, args.assets)
    if not samples:
        raise SystemExit(f"shard_encoding: no shard samples under {args.shards}")
    views = sum(len(s["rgba"]) for s in samples)
    res = samples[0]["rgba"].shape[1]
    print(f"{len(samples)} assets, {views} views at {res} px from {args.shards}\n")
    print(f"{'encoding':>30} | {'KB/asset':>8} {'x PNG':>6} | {'PSNR mean':>9} {'worst':>6} {'alpha err':>9} | "
          f"{'encode ms':>9} {'decode ms':>9}")
    base = None
    for label, settings in ENCODINGS.items():
        cfg = ShardsConfig(**settings)
        t0 = time.perf_counter()
        encoded = [encode_sample(s, cfg) for s in samples]
        t1 = time.perf_counter()
        decoded = [decode_sample(_raw(m)) for m in encoded]
        t2 = time.perf_counter()
        size = sum(len(v) for m in encoded for v in m.values()) / len(samples)
        base = base or size
        psnr = [_psnr(d["rgba"], s["rgba"]) for d, s in zip(decoded, samples)]
        alpha = max(int(np.abs(d["rgba"][..., 3].astype(int) - s["rgba"][..., 3]).max()) for d, s in zip(decoded, samples))
        print(f"{label:>30} | {size / 1e3:8.1f} {base / size:6.2f} | {np.mean(psnr):9.1f} {min(psnr):6.1f} {alpha:9d} | "
              f"{1e3 * (t1 - t0) / len(samples):9.1f} {1e3 * (t2 - t1) / len(samples):9.1f}")
    print("\nPSNR: of the rgba premultiplied by alpha against the stored one, over the object's pixels, mean and "
          "worst asset (inf: identical); alpha err: the largest alpha difference")


if __name__ == "__main__":
    main()
