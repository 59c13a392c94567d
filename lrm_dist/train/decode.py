"""Decode just the views a training sample needs from one raw shard sample (the shard contract's members).

A shard sample holds every view's rgba, depth and normal PNGs; training uses the rgba and depth of a
few views and the occupancy grid, so only those are decoded (decoding all of them costs several times
the whole recipe). A sample without depth or occupancy members trains without those terms.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from lrm_dist.geometry.occupancy import decode_grid
from lrm_dist.images import GREY16_MODES, PNG_ONLY, decode_image, pixels_of
from lrm_dist.shards.sample import DEPTH_MEMBERS, depth_field
from lrm_dist.train.config import SampleConfig
from lrm_dist.train.sample import build_sample, choose_views

_WANTED = (".json", ".rgba.png", *(f".{m}" for m in DEPTH_MEMBERS), ".occupancy.npz")


def wanted_member(name: str) -> bool:
    """Members the trainer reads (select_files/fileselect filter): json, rgba and depth (either name), occupancy."""
    return name.endswith(_WANTED)


def _json(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    return json.loads(bytes(value).decode("utf-8"))


def _png_rgba(data: bytes, name: str) -> np.ndarray:
    return decode_image(bytes(data), name, pixels_of("RGBA"), formats=PNG_ONLY)


def _png_depth(data: bytes, depth_scale: float, name: str) -> np.ndarray:
    depth = decode_image(bytes(data), name, pixels_of(*GREY16_MODES), formats=PNG_ONLY)
    return depth.astype(np.float32) * np.float32(depth_scale)


def sample_from_raw(
    raw: dict[str, Any], cfg: SampleConfig, source_size: int, rng: np.random.Generator
) -> dict[str, Any]:
    """A training sample (``sample.build_sample``'s arrays plus ``asset_id``) from a raw WebDataset dict.

    ``raw`` maps member suffixes (``meta.json``, ``cameras.json``, ``NNN.rgba.png``) to bytes, as
    both ``webdataset`` and ``ray.data.read_webdataset(decoder=None)`` produce them.
    """
    key = raw.get("__key__", "?")
    for member in ("meta.json", "cameras.json"):
        if member not in raw:
            raise ValueError(f"shard sample {key!r} has no {member} member")
    cameras = _json(raw["cameras.json"])
    c2w_all = np.asarray(cameras["c2w"], dtype=np.float64)
    intr_all = np.asarray(cameras["intrinsics"], dtype=np.float64)
    views = choose_views(len(c2w_all), cfg.supervision_views, rng)
    meta = _json(raw["meta.json"])
    rgba = []
    for v in views:
        member = f"{int(v):03d}.rgba.png"
        if member not in raw:
            raise ValueError(f"shard sample {key!r} has no {member} member")
        rgba.append(_png_rgba(raw[member], f"shard sample {key!r} member {member}"))
    depth_fields = [depth_field(raw, int(v)) for v in views]
    depth = None
    if cfg.depth and "depth_scale" in meta and None not in depth_fields:
        scale = float(meta["depth_scale"])
        depth = np.stack([_png_depth(raw[f], scale, f"shard sample {key!r} member {f}") for f in depth_fields])
    occupancy = None
    if cfg.occupancy_points and raw.get("occupancy.npz") is not None:
        occupancy = decode_grid(raw["occupancy.npz"], f"shard sample {key!r} occupancy")
    sample = build_sample(np.stack(rgba), c2w_all[views], intr_all[views], cfg, source_size, rng, depth, occupancy)
    sample["asset_id"] = meta.get("asset_id", str(key))
    sample["views"] = views.astype(np.int64)
    return sample
