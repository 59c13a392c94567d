"""Reading shards back as arrays, with plain ``webdataset`` or with Ray Data.

``iter_shard_samples(urls)`` yields the decoded dict of ``lrm_dist.shards.sample.decode_sample``;
``read_ray_dataset(urls)`` gives a Ray Dataset of raw samples (bytes per field, ``__key__``) to
``map(decode_sample)`` or to decode inside a ``map_batches`` worker. Ray splits the key at the first
dot, which is why asset ids contain none.
"""

from __future__ import annotations

from collections.abc import Iterator

from lrm_dist.shards.manifest import shard_urls
from lrm_dist.shards.sample import decode_sample


def _urls(urls: str | list[str]) -> list[str]:
    return [urls] if isinstance(urls, str) else list(urls)


def iter_shard_samples(urls: str | list[str]) -> Iterator[dict]:
    """Decoded samples of the given shard files/URLs, in order (plain webdataset, no shuffling)."""
    import webdataset as wds

    from lrm_dist.storage import register_webdataset_urls

    urls = _urls(urls)
    if not urls:
        return
    register_webdataset_urls()  # object-store shards (s3://...) open through fsspec
    for raw in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        yield decode_sample(raw)


def iter_render_samples(render_url: str) -> Iterator[dict]:
    """Every done sample of a render output folder (``<workdir>/render``), via its manifest."""
    yield from iter_shard_samples(shard_urls(render_url))


def read_ray_dataset(urls: str | list[str]):
    """A Ray Dataset with one row per sample: ``__key__`` and each member's raw bytes (``decode_sample`` it)."""
    import ray

    from lrm_dist.storage import arrow_filesystem, is_url

    urls = _urls(urls)
    filesystem = arrow_filesystem(urls[0])[0] if urls and is_url(urls[0]) else None  # the job's storage options
    return ray.data.read_webdataset(urls, decoder=None, filesystem=filesystem)
