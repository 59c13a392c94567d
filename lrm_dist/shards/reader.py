"""Reading shards back as arrays, with plain ``webdataset`` or with Ray Data.

``iter_shard_samples(urls)`` yields the decoded dict of ``lrm_dist.shards.sample.decode_sample``;
``read_ray_dataset(urls)`` gives a Ray Dataset of raw samples (bytes per field, ``__key__``) to
``map(decode_sample)`` or to decode inside a ``map_batches`` worker. Ray splits the key at the first
dot, which is why asset ids contain none. ``read_raw_samples(url, members)`` streams one shard tar's
raw samples with only the named members read, raising on a cut or corrupt tar where ``tarfile``
would stop quietly (the evaluation's reader).
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable, Collection, Iterator

from lrm_dist.shards.manifest import shard_urls
from lrm_dist.shards.sample import MAX_MEMBER_BYTES, OversizedMember, decode_sample


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


_MEMBER_NAME = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # WebDataset's split: key ends at the basename's 1st dot


class _ShardMember(tarfile.TarInfo):
    """A tar header that raises where ``tarfile`` would quietly stop: a cut, empty or garbled header."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tar)
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as exc:
            raise tarfile.ReadError(
                f"no valid tar header at byte {tar.offset} ({exc}): the tar is cut or corrupt") from None


def read_raw_samples(
    url: str, members: Collection[str | tuple[str, ...]] | Callable[[str], bool], max_member_bytes: int = MAX_MEMBER_BYTES,
) -> Iterator[dict]:
    """Raw samples of one shard tar, streamed in order: ``__key__``, ``__url__`` and the bytes of its ``members``
    (suffixes, a tuple of suffixes standing for "any one of these", or a test of the member's file name; the
    others are skipped unread), for
    ``lrm_dist.shards.sample.ShardSample``. The one tar reader of training and evaluation.

    A wanted member larger than ``max_member_bytes`` is not read: its value is an ``OversizedMember``, which
    ``ShardSample`` refuses with a one-line error naming it (that sample fails, the shard goes on). Where
    the tar is damaged (cut anywhere before its end-of-archive blocks, a corrupt header) the error is
    raised after every sample before the damage, and the one it cut if that had all ``members``.
    """
    import fsspec

    if callable(members):
        wanted, complete = (lambda name, suffix: members(name)), (lambda s: True)
    else:
        groups = [(m,) if isinstance(m, str) else tuple(m) for m in members]
        names = {n for group in groups for n in group}
        wanted, complete = (lambda name, suffix: suffix in names), (lambda s: all(any(n in s for n in g) for g in groups))
    sample: dict | None = None
    try:
        with fsspec.open(url, "rb") as fh, tarfile.open(fileobj=fh, mode="r|*", tarinfo=_ShardMember) as tar:
            for info in tar:
                match = _MEMBER_NAME.match(info.name)
                if not info.isfile() or not match:
                    continue
                key, suffix = match.groups()
                if sample is not None and key != sample["__key__"]:
                    yield sample
                    sample = None
                sample = sample or {"__key__": key, "__url__": url}
                if wanted(info.name, suffix):
                    too_big = info.size > max_member_bytes
                    sample[suffix] = OversizedMember(info.size, max_member_bytes) if too_big else tar.extractfile(info).read()
    except Exception:
        if sample is not None and complete(sample):
            yield sample
        raise
    if sample is not None:
        yield sample
