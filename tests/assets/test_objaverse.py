"""The objaverse source, fully offline: the test writes the cache objaverse would download."""

import gzip
import json

import numpy as np

from lrm_dist.assets import build_assets, read_asset_manifest
from lrm_dist.assets.config import ObjaverseSource
from lrm_dist.assets.procedural import generate_furniture, write_procedural_glb
from lrm_dist.assets.sources import select_objaverse_uids


def _make_cache(root):
    versioned = root / "hf-objaverse-v1"
    lvis = {"armchair": ["a1" * 16, "a2" * 16], "chair": ["c1" * 16], "bookcase": ["b1" * 16],
            "loveseat": ["s1" * 16], "banana": ["x1" * 16]}
    paths = {}
    for name, uids in lvis.items():
        for uid in uids:
            rel = f"glbs/000-001/{uid}.glb"
            category = {"armchair": "chair", "chair": "chair", "bookcase": "bookshelf", "loveseat": "sofa"}.get(name, "bed")
            write_procedural_glb(generate_furniture(category, len(paths)), versioned / rel)
            paths[uid] = rel
    versioned.mkdir(parents=True, exist_ok=True)
    with gzip.open(versioned / "lvis-annotations.json.gz", "wt") as fh:
        json.dump(lvis, fh)
    with gzip.open(versioned / "object-paths.json.gz", "wt") as fh:
        json.dump(paths, fh)
    return lvis


def test_selection_maps_lvis_names_and_is_seeded():
    lvis = {"armchair": ["a", "b"], "folding_chair": ["c"], "bookcase": ["d"], "banana": ["e"]}
    src = ObjaverseSource(categories=["chair", "bookshelf"], per_category=2, seed=0)
    picked = select_objaverse_uids(src, lvis)
    assert {c for _, c in picked} == {"chair", "bookshelf"}
    assert len([u for u, c in picked if c == "chair"]) == 2
    assert ("d", "bookshelf") in picked and all(u != "e" for u, _ in picked)
    assert picked == select_objaverse_uids(src, lvis)


def test_objaverse_offline_from_cache(tmp_path, make_cfg):
    _make_cache(tmp_path / "cache")
    src = {"kind": "objaverse", "cache_dir": str(tmp_path / "cache"), "per_category": 5,
           "categories": ["chair", "bookshelf", "sofa"], "download_processes": 1}
    summary = build_assets(make_cfg([src]))
    rows = read_asset_manifest(summary.manifest).to_pylist()
    assert summary.per_category == {"chair": 3, "bookshelf": 1, "sofa": 1}
    assert all(r["status"] == "ok" and r["source"] == "objaverse" for r in rows)
    assert all(r["uri"].startswith(str(tmp_path / "cache")) for r in rows)
    assert all(np.isclose(max(np.subtract(r["bounds"][3:], r["bounds"][:3])) * r["norm_scale"], 1.8) for r in rows)
