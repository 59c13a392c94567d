"""WebDataset shards of rendered assets: sample encoding, transactional writer/manifest with resume, readers."""

from lrm_dist.shards.manifest import read_render_manifest, shard_urls
from lrm_dist.shards.reader import iter_render_samples, iter_shard_samples, read_ray_dataset
from lrm_dist.shards.sample import decode_sample, encode_sample
from lrm_dist.shards.store import ShardStore, done_row, failed_row

__all__ = [
    "ShardStore", "decode_sample", "done_row", "encode_sample", "failed_row", "iter_render_samples",
    "iter_shard_samples", "read_ray_dataset", "read_render_manifest", "shard_urls",
]
