"""The contracts between stages: Arrow schemas of the Parquet manifests, versioned.

Stages meet only through these files, so each can run alone, resume, and scale on its own.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"

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
