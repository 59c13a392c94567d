"""Decode just the views a training sample needs from one raw shard sample (the shard contract's members).

A shard sample holds every view's rgba, depth and normal images; training uses the rgba, depth and normals
of a few views and the occupancy grid, so only those are read (``lrm_dist.shards.sample.ShardSample``
decodes member by member; decoding all of them costs several times the whole recipe). A sample
without depth or occupancy members trains without those terms; without normal maps its normal targets
come from the depth maps (``sample.depth_map_normals``), and without both the normal term is off for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lrm_dist.shards.sample import JSON_MEMBERS, OCCUPANCY_MEMBER, VIEW_MEMBERS, ShardSample
from lrm_dist.train.config import SampleConfig
from lrm_dist.train.sample import build_layers_sample, build_sample, choose_views

_WANTED = (*(f".{m}" for m in (*JSON_MEMBERS, *VIEW_MEMBERS)), f".{OCCUPANCY_MEMBER}")


def wanted_member(name: str) -> bool:
    """Members the trainer reads (select_files/fileselect filter): json, rgba, normal and depth (any of their
    names), occupancy."""
    return name.endswith(_WANTED)


def sample_from_raw(
    raw: dict[str, Any], cfg: SampleConfig, source_size: int, rng: np.random.Generator, layers_only: bool = False,
) -> dict[str, Any]:
    """A training sample (``sample.build_sample``'s arrays plus ``asset_id``) from a raw WebDataset dict.

    ``raw`` maps member suffixes (``meta.json``, ``cameras.json``, ``NNN.rgba.png``) to bytes, as
    both ``webdataset`` and ``ray.data.read_webdataset(decoder=None)`` produce them. A missing or
    unreadable member raises ``ValueError`` (``BadSample`` or ``BadImage``) naming the sample and member.
    ``layers_only``: the lift warm-up's sample (``sample.build_layers_sample``), the source view and grid alone.
    """
    shard_sample = ShardSample(raw)
    meta = shard_sample.meta
    c2w_all, intr_all = shard_sample.cameras()
    views = choose_views(len(c2w_all), cfg.supervision_views, rng, cfg.frontal_source_fraction)
    # the grid labels the occupancy points and gives the depth layers: read once when either is on
    occupancy = shard_sample.occupancy() if cfg.occupancy_points or cfg.source_layers else None
    if layers_only:
        source = int(views[0])
        sample = build_layers_sample(shard_sample.rgba(source), c2w_all[source], intr_all[source], cfg, source_size,
                                     occupancy if cfg.source_layers else None)
        sample["asset_id"] = meta.get("asset_id", str(raw.get("__key__", "?")))
        sample["views"] = views[:1].astype(np.int64)
        return sample
    rgba = [shard_sample.rgba(int(v)) for v in views]
    depth = None
    if cfg.depth and "depth_scale" in meta and all(shard_sample.depth_member(int(v)) for v in views):
        depth = np.stack([shard_sample.depth(int(v)) for v in views])
    normal = None
    if cfg.normal and all(shard_sample.view_member(int(v), "normal") for v in views):
        # the normal map is set where the depth pass is (background 0); without depth, trust the alpha
        masks = [(depth[i] > 0) if depth is not None else (rgba[i][..., 3] > 127) for i in range(len(views))]
        normal = np.stack([shard_sample.normal(int(v), masks[i]) for i, v in enumerate(views)])
    sample = build_sample(
        np.stack(rgba), c2w_all[views], intr_all[views], cfg, source_size, rng, depth, occupancy, normal
    )
    sample["asset_id"] = meta.get("asset_id", str(raw.get("__key__", "?")))
    sample["views"] = views.astype(np.int64)
    return sample
