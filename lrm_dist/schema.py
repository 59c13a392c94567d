"""The contracts between stages: Arrow schemas of the Parquet manifests, versioned.

Stages meet only through these files, so each can run alone, resume, and scale on its own.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "3"
"""Version of these contracts, shard samples included (their ``meta.schema_version``; in the render settings hash).

2: the optional occupancy member; 3: the depth member renamed ``NNN.depth.png16`` (schema 2's ``.depth.png``
is still read). The manifests are unchanged since 1.
"""

ASSET_SCHEMA = pa.schema(
    [
        pa.field("asset_id", pa.string(), nullable=False),   # [A-Za-z0-9_-]+, no dots (WebDataset keys)
        pa.field("source", pa.string(), nullable=False),     # procedural | local | objaverse
        pa.field("category", pa.string(), nullable=False),   # table | chair | bookshelf | bed | sofa
        pa.field("uri", pa.string(), nullable=False),        # the original mesh file (path or URL)
        pa.field("up_axis", pa.string()),                    # 'y' or 'z': the file's up axis
        pa.field("sha256", pa.string()),                     # of the file at ``uri``
        pa.field("n_vertices", pa.int64()),
        pa.field("n_faces", pa.int64()),
        pa.field("bounds", pa.list_(pa.float64())),          # z-up, before normalisation: min xyz, max xyz
        pa.field("norm_center", pa.list_(pa.float64())),     # canonical = (z_up - center) * scale
        pa.field("norm_scale", pa.float64()),
        pa.field("watertight", pa.bool_()),
        pa.field("mesh_path", pa.string()),                  # normalised ground-truth mesh (PLY, canonical frame)
        pa.field("status", pa.string(), nullable=False),     # ok | rejected
        pa.field("reason", pa.string()),                     # why rejected (one line), else null
    ],
    metadata={"lrm_dist.schema": "asset", "lrm_dist.schema_version": SCHEMA_VERSION},
)

RENDER_SCHEMA = pa.schema(
    [
        pa.field("asset_id", pa.string(), nullable=False),
        pa.field("settings_hash", pa.string(), nullable=False),  # lrm_dist.render.settings.settings_hash
        pa.field("status", pa.string(), nullable=False),         # done | failed
        pa.field("reason", pa.string()),                         # why failed (one line), else null
        pa.field("attempts", pa.int32()),                        # render attempts spent on this row
        pa.field("shard", pa.string()),                          # shard file name (done rows), e.g. shard-000003.tar
        pa.field("n_views", pa.int32()),
        pa.field("seconds", pa.float64()),                       # render seconds of the successful attempt
    ],
    metadata={"lrm_dist.schema": "render", "lrm_dist.schema_version": SCHEMA_VERSION},
)

SHARD_INDEX_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.string(), nullable=False),          # file name under <workdir>/render/shards/
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("n_samples", pa.int32(), nullable=False),
        pa.field("asset_ids", pa.list_(pa.string())),            # sample keys in the tar, sorted
        pa.field("settings_hashes", pa.list_(pa.string())),      # per sample, aligned with asset_ids
    ],
    metadata={"lrm_dist.schema": "shard_index", "lrm_dist.schema_version": SCHEMA_VERSION},
)

EVAL_SCHEMA = pa.schema(
    [
        pa.field("asset_id", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),          # ok | failed (inference or metrics raised)
        pa.field("reason", pa.string()),                          # why failed, or why the prediction is empty
        pa.field("eval_hash", pa.string(), nullable=False),       # checkpoint bytes + hashed eval settings
        pa.field("checkpoint", pa.string()),                      # folder or hub id evaluated
        pa.field("render_settings_hash", pa.string()),            # the shard sample's settings_hash
        pa.field("empty", pa.bool_()),                            # no surface predicted (scored as the worst)
        pa.field("iou", pa.float64()),                            # volumetric IoU (unit cube + padding)
        pa.field("chamfer_l1", pa.float64()),                     # 0.5 * (accuracy + completeness), unit cube
        pa.field("accuracy", pa.float64()),                       # mean distance prediction -> ground truth
        pa.field("completeness", pa.float64()),                   # mean distance ground truth -> prediction
        pa.field("normal_consistency", pa.float64()),
        pa.field("fscore_thresholds", pa.list_(pa.float64())),
        pa.field("fscore", pa.list_(pa.float64())),               # aligned with fscore_thresholds
        pa.field("precision", pa.list_(pa.float64())),
        pa.field("recall", pa.list_(pa.float64())),
        pa.field("n_vertices", pa.int64()),                       # of the predicted mesh
        pa.field("n_faces", pa.int64()),
        pa.field("input_view", pa.int32()),
        pa.field("input_c2w", pa.list_(pa.float64())),            # 16 numbers, row-major, object frame
        pa.field("input_intrinsics", pa.list_(pa.float64())),     # fx, fy, cx, cy, W, H (pixels)
        pa.field("input_file", pa.string()),                      # input view PNG, relative to the eval folder
        pa.field("mesh_file", pa.string()),                       # reconstruction GLB, relative to the eval folder
        pa.field("seconds_inference", pa.float64()),
        pa.field("seconds_metrics", pa.float64()),
    ],
    metadata={"lrm_dist.schema": "eval", "lrm_dist.schema_version": SCHEMA_VERSION},
)

EVAL_SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),            # category | class_mean | all
        pa.field("category", pa.string(), nullable=False),        # the category, or '*' for class_mean / all
        pa.field("eval_hash", pa.string(), nullable=False),
        pa.field("n_assets", pa.int64()),                         # rows with status ok (empty ones included)
        pa.field("n_empty", pa.int64()),
        pa.field("n_failed", pa.int64()),
        pa.field("iou", pa.float64()),                            # means over assets (class_mean: over categories)
        pa.field("iou_median", pa.float64()),
        pa.field("chamfer_l1", pa.float64()),
        pa.field("normal_consistency", pa.float64()),
        pa.field("fscore_thresholds", pa.list_(pa.float64())),
        pa.field("fscore", pa.list_(pa.float64())),
    ],
    metadata={"lrm_dist.schema": "eval_summary", "lrm_dist.schema_version": SCHEMA_VERSION},
)
