"""One shard sample (= one asset) to tar members and back, per the shard sample contract.

Members of asset ``<id>``: ``<id>.meta.json``, ``<id>.cameras.json`` and per view ``<id>.NNN.rgba.png``
(uint8 RGBA, straight alpha), ``<id>.NNN.depth.png16`` (a 16-bit greyscale PNG of planar depth, metres =
value * depth_scale, 0 = background; schema 2 named it ``.depth.png``, still read) and
``<id>.NNN.normal.png`` (uint8, world normal * 0.5 + 0.5, 0 = background; left out with
``shards.normal_maps: false``) and, when the render stage had the canonical mesh, ``<id>.occupancy.npz``
(the ground-truth occupancy grid, ``lrm_dist.geometry.occupancy``). With ``shards.image_format: webp``
the rgba and normal members are ``.rgba.webp`` / ``.normal.webp`` (lossless, or lossy rgba with
``shards.webp_quality``); readers take either.
The decoded dict: asset_id, category, rgba [V,H,W,4] uint8, depth [V,h,w] float32, normal [V,h,w,3]
float32 (zero on background; None without normal maps), c2w [V,4,4] float32, intrinsics [V,6] float32,
meta, and occupancy bool [R,R,R] (None without the member).

This is the one reader of the format: ``ShardSample(raw)`` decodes only the members asked for (a
training sample needs a few views' rgba and depth, the evaluation one view's undecoded PNG and its
camera), JSON through one size-bounded decoder (``read_json``), images through the image guard
(``lrm_dist.images.decode_image``), occupancy without pickle; every failure is one line naming the
sample, its shard when known, and the member. ``decode_sample`` is the full decode built on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import numpy as np

from lrm_dist.images import GREY16_MODES, PNG_ONLY, decode_image, encode_image, one_line, pixels_of
from lrm_dist.schema import SCHEMA_VERSION
from lrm_dist.shards.config import ShardsConfig

ASSET_ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
DEPTH_MEMBER = "depth.png16"
"""Per-view depth suffix: PNG bytes under an extension no standard image decoder claims (they cut 16 bits to 8)."""
DEPTH_MEMBERS = (DEPTH_MEMBER, "depth.png")
"""Depth suffixes read, newest first: schema 2 shards name the same PNG ``depth.png``."""
RGBA_MEMBERS = ("rgba.png", "rgba.webp")
NORMAL_MEMBERS = ("normal.png", "normal.webp")
KIND_MEMBERS = {"rgba": RGBA_MEMBERS, "depth": DEPTH_MEMBERS, "normal": NORMAL_MEMBERS}
"""Per-view member suffixes (after ``NNN.``) of each kind, the PNG name first."""
VIEW_MEMBERS = {suffix: kind for kind, suffixes in KIND_MEMBERS.items() for suffix in suffixes}
"""Per-view member suffix (after ``NNN.``) -> kind."""
OCCUPANCY_MEMBER = "occupancy.npz"
JSON_MEMBERS = ("meta.json", "cameras.json")
MAX_MEMBER_BYTES = 256 << 20
"""Largest shard member the tar reader reads into memory (a 4096^2 16-bit depth PNG is under 40 MB)."""
MAX_JSON_BYTES = 16 << 20
"""Largest JSON member read (cameras of thousands of views take well under 1 MB)."""
_MEMBER_MODES = {"rgba": ("RGBA",), "depth": GREY16_MODES, "normal": ("RGB", "RGBA")}
_VIEW_FIELD = re.compile(r"^(\d{3,})\.(.+)$")


def _decode_member(data, name: str, kind: str) -> np.ndarray:
    """A view member's pixels; the format its name says (``.webp``: WebP, else PNG), nothing else."""
    if isinstance(data, np.ndarray):  # already decoded (Ray Data's default decoder)
        return data
    formats = ("WEBP",) if name.endswith(".webp") else PNG_ONLY
    return decode_image(bytes(data), name, pixels_of(*_MEMBER_MODES[kind]), formats=formats)


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


def encode_sample(sample: dict, shards: ShardsConfig | None = None) -> dict[str, bytes]:
    """Tar members (full member names) of one rendered asset, names sorted, encoded as ``shards`` says
    (``image_format``, ``webp_quality``, ``normal_maps``; default: PNG with normal maps)."""
    cfg = shards or ShardsConfig()
    asset_id = sample["asset_id"]
    if not ASSET_ID_RE.match(asset_id):
        raise ValueError(f"asset_id {asset_id!r}: must match [A-Za-z0-9_-]+ (WebDataset keys end at the first dot)")
    meta = dict(sample["meta"])
    meta["schema_version"] = SCHEMA_VERSION  # what this writer writes, whatever the caller passed
    meta.pop("rgba_webp_quality", None)  # an upscaled sample is encoded again
    if cfg.webp_quality is not None:
        meta["rgba_webp_quality"] = cfg.webp_quality
    depth_scale = float(meta["depth_scale"])
    rgba, depth = sample["rgba"], sample["depth"]
    normal = sample.get("normal") if cfg.normal_maps else None
    views = len(rgba)
    counts = {len(depth), len(sample["c2w"]), len(sample["intrinsics"]), views, meta["n_views"]}
    if len(counts) > 1 or (normal is not None and len(normal) != views):
        raise ValueError(f"sample {asset_id}: view counts disagree")
    ext = cfg.image_format
    members = {
        f"{asset_id}.meta.json": json.dumps(meta, sort_keys=True).encode(),
        f"{asset_id}.cameras.json": json.dumps({
            "c2w": np.asarray(sample["c2w"], dtype=np.float64).tolist(),
            "intrinsics": np.asarray(sample["intrinsics"], dtype=np.float64).tolist(),
        }).encode(),
    }
    for i in range(views):
        d = encode_depth(depth[i], depth_scale)
        members[f"{asset_id}.{i:03d}.rgba.{ext}"] = encode_image(
            np.ascontiguousarray(rgba[i], dtype=np.uint8), ext, cfg.webp_quality)
        members[f"{asset_id}.{i:03d}.{DEPTH_MEMBER}"] = encode_image(d)
        if normal is not None:
            members[f"{asset_id}.{i:03d}.normal.{ext}"] = encode_image(encode_normal(normal[i], d > 0), ext)
    if sample.get("occupancy") is not None:
        from lrm_dist.geometry.occupancy import encode_grid

        members[f"{asset_id}.occupancy.npz"] = encode_grid(sample["occupancy"])
    return dict(sorted(members.items()))


class OversizedMember:
    """A member the tar reader left unread because it is larger than its limit (``ShardSample`` refuses it)."""

    def __init__(self, size: int, limit: int):
        self.size, self.limit = size, limit

    def __repr__(self) -> str:
        return f"OversizedMember({self.size} bytes, limit {self.limit})"


class BadSample(ValueError):
    """A shard sample member that is missing or unreadable; ``str(err)`` is one line naming the sample
    (and its shard when known) and the member. Images that fail the image guard raise ``BadImage`` instead,
    named the same way."""


def read_json(value: object, name: str, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """A JSON object member (bytes, str, or a dict already decoded by a WebDataset decoder), at most ``max_bytes``."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise BadSample(f"{name}: expected JSON bytes, got {type(value).__name__}")
    if len(value) > max_bytes:
        raise BadSample(f"{name}: {len(value)} bytes, over the {max_bytes} byte limit of a JSON member")
    try:
        doc = json.loads(bytes(value))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, or nested too deep
        raise BadSample(f"{name}: not readable JSON ({one_line(exc)})") from None
    if not isinstance(doc, dict):
        raise BadSample(f"{name}: expected a JSON object, got {type(doc).__name__}")
    return doc


class ShardSample:
    """One raw shard sample, decoded member by member on request (nothing is decoded up front).

    ``raw`` is a WebDataset sample: ``__key__`` (the asset id), optionally ``__url__`` (its shard), and
    member suffixes (``meta.json``, ``NNN.rgba.png``, ...) mapped to bytes, or to values a WebDataset
    decoder already decoded (a dict for JSON, an array for a PNG), as ``webdataset``, this package's
    tar reader and ``ray.data.read_webdataset`` produce them. Only the members a method asks for are
    looked up; a missing or unreadable one raises ``BadSample`` (images: ``BadImage``) naming it.
    """

    def __init__(self, raw: Mapping[str, object]):
        self.raw = raw
        self.key = raw.get("__key__", "?")
        url = raw.get("__url__")
        shard = str(url).rstrip("/").rsplit("/", 1)[-1] if url else ""
        self.label = f"sample {self.key}" + (f" of {shard}" if shard else "")
        self._meta: dict | None = None
        self._cameras: tuple[np.ndarray, np.ndarray] | None = None

    def name(self, member: str) -> str:
        """How errors name ``member`` of this sample."""
        return f"{self.label} member {member}"

    def has(self, member: str) -> bool:
        return self.raw.get(member) is not None

    def member(self, member: str) -> object:
        """The raw value of ``member`` (bytes, or what a decoder made of it); ``BadSample`` when missing."""
        value = self.raw.get(member)
        if value is None:
            raise BadSample(f"{self.label} has no {member} member")
        if isinstance(value, OversizedMember):
            raise BadSample(f"{self.name(member)} is {value.size} bytes, over the {value.limit}-byte limit of a shard member")
        return value

    def member_bytes(self, member: str) -> bytes:
        """The undecoded bytes of ``member`` (e.g. an input view handed on to be decoded elsewhere)."""
        value = self.member(member)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise BadSample(f"{self.name(member)}: expected raw bytes, got {type(value).__name__}")
        return bytes(value)

    @property
    def meta(self) -> dict:
        """``meta.json`` (asset_id, category, settings_hash, n_views, depth_scale, ...)."""
        if self._meta is None:
            self._meta = read_json(self.member("meta.json"), self.name("meta.json"))
        return self._meta

    @property
    def n_views(self) -> int:
        try:
            return int(self.meta["n_views"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadSample(f"{self.name('meta.json')}: no view count ({one_line(exc)})") from None

    def cameras(self) -> tuple[np.ndarray, np.ndarray]:
        """``cameras.json`` as float64 arrays: camera-to-world [V, 4, 4] and intrinsics [V, 6]."""
        if self._cameras is None:
            name = self.name("cameras.json")
            cams = read_json(self.member("cameras.json"), name)
            try:
                c2w = np.asarray(cams["c2w"], dtype=np.float64)
                intrinsics = np.asarray(cams["intrinsics"], dtype=np.float64)
            except (KeyError, TypeError, ValueError) as exc:
                raise BadSample(f"{name}: no camera arrays ({one_line(exc)})") from None
            if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or intrinsics.shape != (len(c2w), 6):
                raise BadSample(f"{name}: c2w {list(c2w.shape)} and intrinsics {list(intrinsics.shape)} "
                                "are not [V, 4, 4] and [V, 6]")
            self._cameras = c2w, intrinsics
        return self._cameras

    def view_member(self, view: int, kind: str) -> str | None:
        """The member holding ``view``'s ``kind`` (rgba, depth, normal) under any of its names, None without one."""
        return next((f for f in (f"{view:03d}.{m}" for m in KIND_MEMBERS[kind]) if self.raw.get(f) is not None), None)

    def _image(self, view: int, kind: str) -> tuple[np.ndarray, str]:
        member = self.view_member(view, kind) or f"{view:03d}.{KIND_MEMBERS[kind][0]}"  # missing: named as PNG
        return _decode_member(self.member(member), self.name(member), kind), member

    def rgba(self, view: int) -> np.ndarray:
        """View ``view``'s RGBA image, uint8 [H, W, 4]."""
        return self._image(view, "rgba")[0]

    def depth_member(self, view: int) -> str | None:
        """The member holding ``view``'s depth (either schema's name), None without one."""
        return self.view_member(view, "depth")

    def depth_steps(self, view: int) -> np.ndarray:
        """View ``view``'s depth as stored: uint16 steps of ``meta.depth_scale`` [H, W], 0 = background."""
        return self._image(view, "depth")[0]

    def depth_scale(self) -> float:
        try:
            return float(self.meta["depth_scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BadSample(f"{self.name('meta.json')}: no depth scale ({one_line(exc)})") from None

    def depth(self, view: int) -> np.ndarray:
        """View ``view``'s planar depth in metres, float32 [H, W] (0 on background)."""
        return self.depth_steps(view).astype(np.float32) * np.float32(self.depth_scale())

    def normal(self, view: int, mask: np.ndarray | None = None) -> np.ndarray:
        """View ``view``'s world normals, float32 [H, W, 3], zero outside ``mask`` (default: where depth is set)."""
        if mask is None:
            mask = self.depth_steps(view) > 0
        encoded, member = self._image(view, "normal")
        if encoded.shape[:2] != mask.shape:
            raise BadSample(f"{self.name(member)} is {encoded.shape[1]}x{encoded.shape[0]} px, its view's "
                            f"depth {mask.shape[1]}x{mask.shape[0]}")
        return decode_normal(encoded, mask)

    def occupancy(self) -> np.ndarray | None:
        """The ground-truth occupancy grid, bool [R, R, R] (no pickle, size checked), or None without the member."""
        if not self.has(OCCUPANCY_MEMBER):
            return None
        from lrm_dist.geometry.occupancy import decode_grid

        try:
            return decode_grid(self.member(OCCUPANCY_MEMBER), self.name(OCCUPANCY_MEMBER))
        except ValueError as exc:  # its message already names the member
            raise BadSample(str(exc)) from None


def decode_sample(raw: dict) -> dict:
    """A WebDataset sample (``__key__`` plus fields as bytes, or as already decoded values) -> arrays.

    A member PNG that is not a readable PNG, or claims more pixels than ``lrm_dist.images.MAX_PIXELS``,
    raises ``lrm_dist.images.BadImage`` naming the sample and member; a missing or unreadable JSON or
    occupancy member raises ``BadSample``."""
    sample = ShardSample(raw)
    meta = sample.meta
    c2w, intrinsics = sample.cameras()
    fields: dict[str, set[int]] = {"rgba": set(), "depth": set(), "normal": set()}
    for name in raw:
        m = _VIEW_FIELD.match(name)
        if m and m.group(2) in VIEW_MEMBERS:
            fields[VIEW_MEMBERS[m.group(2)]].add(int(m.group(1)))
    views = sample.n_views
    for kind, got in fields.items():
        if sorted(got) != list(range(views)) and (kind != "normal" or got):  # normal maps: all views, or none
            raise ValueError(f"{sample.label}: {kind} views {sorted(got)} != 0..{views - 1}")
    rgba = np.stack([sample.rgba(i) for i in range(views)]).astype(np.uint8)
    depth_raw = np.stack([sample.depth_steps(i) for i in range(views)]).astype(np.float32)
    depth = depth_raw * np.float32(sample.depth_scale())
    normal = np.stack([sample.normal(i, depth_raw[i] > 0) for i in range(views)]) if fields["normal"] else None
    return {
        "asset_id": meta["asset_id"],
        "category": meta["category"],
        "rgba": rgba,
        "depth": depth,
        "normal": normal,
        "c2w": c2w.astype(np.float32),
        "intrinsics": intrinsics.astype(np.float32),
        "meta": meta,
        "occupancy": sample.occupancy(),
    }
