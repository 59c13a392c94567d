"""Distributed training of the LRM: Ray Train workers running DeepSpeed on streamed WebDataset shards."""

from lrm_dist.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "TrainResult": "lrm_dist.train.stage",
    "train": "lrm_dist.train.stage",
})
