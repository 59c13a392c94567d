"""One shard sample (= one asset) to tar members and back, per the shard sample contract.

Members of asset ``<id>``: ``<id>.meta.json``, ``<id>.cameras.json`` and per view ``<id>.NNN.rgba.png``
(uint8 RGBA, straight alpha), ``<id>.NNN.depth.png16`` (a 16-bit greyscale PNG of planar depth, metres =
value * depth_scale, 0 = background; schema 2 named it ``.depth.png``, still read) and
``<id>.NNN.normal.png`` (uint8, world normal * 0.5 + 0.5, 0 = background) and, when the render stage had
the canonical mesh, ``<id>.occupancy.npz`` (the ground-truth occupancy grid, ``lrm_dist.geometry.occupancy``).
The decoded dict: asset_id, category, rgba [V,H,W,4] uint8, depth [V,h,w] float32, normal [V,h,w,3]
float32 (zero on background), c2w [V,4,4] float32, intrinsics [V,6] float32, meta, and occupancy bool
[R,R,R] (None without the member).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping

import numpy as np

from lrm_dist.images import GREY16_MODES, PNG_ONLY, decode_image, pixels_of
from lrm_dist.schema import SCHEMA_VERSION

ASSET_ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
DEPTH_MEMBER = "depth.png16"
"""Per-view depth suffix: PNG bytes under an extension no standard image decoder claims (they cut 16 bits to 8)."""
DEPTH_MEMBERS = (DEPTH_MEMBER, "depth.png")
"""Depth suffixes read, newest first: schema 2 shards name the same PNG ``depth.png``."""
VIEW_MEMBERS = {"rgba.png": "rgba", "normal.png": "normal", **dict.fromkeys(DEPTH_MEMBERS, "depth")}
"""Per-view member suffix (after ``NNN.``) -> kind."""
_MEMBER_MODES = {"rgba": ("RGBA",), "depth": GREY16_MODES, "normal": ("RGB", "RGBA")}
_VIEW_FIELD = re.compile(r"^(\d{3,})\.(.+)$")


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


def _unpng(data, name: str, *modes: str) -> np.ndarray:
    if isinstance(data, np.ndarray):  # already decoded (Ray Data's default decoder)
        return data
    return decode_image(bytes(data), name, pixels_of(*modes), formats=PNG_ONLY)


def encode_depth(depth: np.ndarray, depth_scale: float) -> np.ndarray:
    """Metres -> uint16 steps of ``depth_scale``; background (<= 0) and out-of-range depths become 0."""
    steps = np.round(np.asarray(depth, dtype=np.float64) / depth_scale)
    valid = (steps >= 1) & (steps <= 65535) & np.isfinite(steps)
    return np.where(valid, steps, 0).astype(np.uint16)


def encode_normal(normal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unit normals -> uint8 ``round((n * 0.5 + 0.5) * 255)``; 0 where ``mask`` is false."""
    enc = np.clip(np.round((np.asarray(normal, dtype=np.float64) * 0.5 + 0.5) * 255), 0, 255).astype(np.uint8)
    enc[~mask] = 0
    return enc


def decode_normal(encoded: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 normals -> float32 unit vectors; zero outside ``mask``."""
    n = encoded[..., :3].astype(np.float32) / 255.0 * 2.0 - 1.0
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(length > 1e-6, n / np.maximum(length, 1e-6), 0.0).astype(np.float32)
    n[~mask] = 0.0
    return n


def encode_sample(sample: dict) -> dict[str, bytes]:
    """Tar members (full member names) of one rendered asset, names sorted."""
    asset_id = sample["asset_id"]
    if not ASSET_ID_RE.match(asset_id):
        raise ValueError(f"asset_id {asset_id!r}: must match [A-Za-z0-9_-]+ (WebDataset keys end at the first dot)")
    meta = dict(sample["meta"])
    meta["schema_version"] = SCHEMA_VERSION  # what this writer writes, whatever the caller passed
    depth_scale = float(meta["depth_scale"])
    rgba, depth, normal = sample["rgba"], sample["depth"], sample["normal"]
    views = len(rgba)
    if not (len(depth) == len(normal) == len(sample["c2w"]) == len(sample["intrinsics"]) == views == meta["n_views"]):
        raise ValueError(f"sample {asset_id}: view counts disagree")
    members = {
        f"{asset_id}.meta.json": json.dumps(meta, sort_keys=True).encode(),
        f"{asset_id}.cameras.json": json.dumps({
            "c2w": np.asarray(sample["c2w"], dtype=np.float64).tolist(),
            "intrinsics": np.asarray(sample["intrinsics"], dtype=np.float64).tolist(),
        }).encode(),
    }
    for i in range(views):
        d = encode_depth(depth[i], depth_scale)
        members[f"{asset_id}.{i:03d}.rgba.png"] = _png(np.ascontiguousarray(rgba[i], dtype=np.uint8))
        members[f"{asset_id}.{i:03d}.{DEPTH_MEMBER}"] = _png(d)
        members[f"{asset_id}.{i:03d}.normal.png"] = _png(encode_normal(normal[i], d > 0))
    if sample.get("occupancy") is not None:
        from lrm_dist.geometry.occupancy import encode_grid

        members[f"{asset_id}.occupancy.npz"] = encode_grid(sample["occupancy"])
    return dict(sorted(members.items()))


def depth_field(raw: Mapping[str, object], view: int) -> str | None:
    """The field of ``raw`` holding ``view``'s depth under either schema's name (None without one)."""
    return next((f for f in (f"{view:03d}.{m}" for m in DEPTH_MEMBERS) if f in raw), None)


def _as_json(value):
    if isinstance(value, (bytes, bytearray)):
        return json.loads(value)
    if isinstance(value, str):
        return json.loads(value)
    return value


def decode_sample(raw: dict) -> dict:
    """A WebDataset sample (``__key__`` plus fields as bytes, or as already decoded values) -> arrays.

    A member PNG that is not a readable PNG, or claims more pixels than ``lrm_dist.images.MAX_PIXELS``,
    raises ``lrm_dist.images.BadImage`` naming the sample and member."""
    key = raw.get("__key__")
    meta = _as_json(raw["meta.json"])
    cams = _as_json(raw["cameras.json"])
    fields: dict[str, dict[int, tuple[str, object]]] = {"rgba": {}, "depth": {}, "normal": {}}
    for name, value in raw.items():
        m = _VIEW_FIELD.match(name)
        if m and m.group(2) in VIEW_MEMBERS:
            fields[VIEW_MEMBERS[m.group(2)]][int(m.group(1))] = (name, value)
    views = int(meta["n_views"])
    for kind, got in fields.items():
        if sorted(got) != list(range(views)):
            raise ValueError(f"sample {key}: {kind} views {sorted(got)} != 0..{views - 1}")

    def png(kind: str, i: int) -> np.ndarray:
        name, value = fields[kind][i]
        return _unpng(value, f"sample {key} member {name}", *_MEMBER_MODES[kind])

    rgba = np.stack([png("rgba", i) for i in range(views)]).astype(np.uint8)
    depth_raw = np.stack([png("depth", i) for i in range(views)]).astype(np.float32)
    depth = depth_raw * np.float32(meta["depth_scale"])
    normal = np.stack([decode_normal(png("normal", i), depth_raw[i] > 0) for i in range(views)])
    occupancy = None
    if raw.get("occupancy.npz") is not None:
        from lrm_dist.geometry.occupancy import decode_grid

        occupancy = decode_grid(raw["occupancy.npz"], f"sample {key} occupancy")
    return {
        "asset_id": meta["asset_id"],
        "category": meta["category"],
        "rgba": rgba,
        "depth": depth,
        "normal": normal,
        "c2w": np.asarray(cams["c2w"], dtype=np.float32),
        "intrinsics": np.asarray(cams["intrinsics"], dtype=np.float32),
        "meta": meta,
        "occupancy": occupancy,
    }
