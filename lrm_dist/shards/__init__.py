"""WebDataset shards of rendered assets: sample encoding, transactional writer/manifest with resume, readers."""

from lrm_dist.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "ShardStore": "lrm_dist.shards.store",
    "decode_sample": "lrm_dist.shards.sample",
    "done_row": "lrm_dist.shards.store",
    "encode_sample": "lrm_dist.shards.sample",
    "failed_row": "lrm_dist.shards.store",
    "iter_render_samples": "lrm_dist.shards.reader",
    "iter_shard_samples": "lrm_dist.shards.reader",
    "read_ray_dataset": "lrm_dist.shards.reader",
    "read_render_manifest": "lrm_dist.shards.manifest",
    "shard_urls": "lrm_dist.shards.manifest",
})
