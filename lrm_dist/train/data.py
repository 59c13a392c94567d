"""Streaming training batches from the WebDataset shards, never loading the data set into memory.

Two readers, same samples (``decode.sample_from_raw``):

* ``webdataset`` (default, measured faster here: docs/train.md): each training worker streams its own
  split of the shards (whole shards per consumer when there are enough, else every ``n``-th sample),
  shuffled per epoch with a seeded buffer of raw bytes, decoded in ``loader_workers`` processes. The
  stream is deterministic given (seed, rank, world size), so resuming skips the consumed raw samples
  without decoding them and continues with exactly the batches an uninterrupted run would have seen.
* ``ray_data``: ``ray.data.read_webdataset`` -> ``map`` (decode + recipe) handed to the trainer,
  each worker iterating ``get_dataset_shard(...).iter_torch_batches``. Resume skips the consumed
  number of batches, but Ray's split order and the recipe's draws are not reproducible.
"""

from __future__ import annotations

import glob
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import torch

from lrm_dist.log import get_logger
from lrm_dist.storage import glob as storage_glob
from lrm_dist.storage import is_url, join
from lrm_dist.train.config import SampleConfig
from lrm_dist.train.decode import sample_from_raw, wanted_member
from lrm_dist.train.sample import collate

log = get_logger(__name__)


def resolve_shards(spec: str) -> list[str]:
    """Sorted tar paths from a folder, a glob or a comma-separated list (the train stage passes
    ``layout().train_shards``: ``train.data.shards``, else ``<workdir>/render/shards``); object-store URLs
    (``s3://...``) alike, listed through fsspec."""
    if "," in spec:
        paths = [p.strip() for p in spec.split(",") if p.strip()]
    elif _isdir(spec):
        paths = _glob(join(spec, "*.tar") if is_url(spec) else os.path.join(spec, "*.tar"))
    else:
        paths = _glob(spec)
    paths = sorted(paths)
    missing = [p for p in paths if not _isfile(p)]
    if not paths or missing:
        raise FileNotFoundError(f"train.data.shards {spec!r}: no shard tars found" + (f" (missing {missing[:3]})" if missing else ""))
    return paths


def _isdir(path: str) -> bool:
    if not is_url(path):
        return os.path.isdir(path)
    fs, inner = fsspec.core.url_to_fs(path)
    return fs.isdir(inner)


def _isfile(path: str) -> bool:
    if not is_url(path):
        return os.path.isfile(path)
    fs, inner = fsspec.core.url_to_fs(path)
    return fs.isfile(inner)


def _glob(pattern: str) -> list[str]:
    return storage_glob(pattern) if is_url(pattern) else glob.glob(pattern)


@dataclass(frozen=True)
class StreamSpec:
    """Everything that fixes one consumer's raw-sample stream (rank x loader-worker)."""

    urls: tuple[str, ...]
    seed: int
    consumer: int
    consumers: int
    shuffle_buffer: int
    holdout: float = 0.0  # samples of the held-out split (lrm_dist.shards.split) are skipped


def _epoch_rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng([p & 0xFFFFFFFF for p in parts])


def _read_raw(urls: list[str]) -> Iterator[dict[str, Any]]:
    """The raw samples of ``urls`` in order, only the members training decodes (the shards' one tar reader)."""
    from lrm_dist.shards.reader import read_raw_samples

    for url in urls:
        yield from read_raw_samples(url, wanted_member)


def _training_split(raws: Iterator[dict[str, Any]], holdout: float) -> Iterator[dict[str, Any]]:
    from lrm_dist.shards.split import is_heldout

    return (raw for raw in raws if not is_heldout(str(raw.get("__key__", "")), holdout))


def raw_stream(spec: StreamSpec) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Endless (epoch, index-in-epoch, raw sample) of one consumer: its split, reshuffled every epoch."""
    epoch = 0
    while True:
        order = list(spec.urls)
        _epoch_rng(spec.seed, epoch).shuffle(order)
        by_shard = len(order) >= spec.consumers
        urls = order[spec.consumer :: spec.consumers] if by_shard else order
        mine = (
            raw for i, raw in enumerate(_training_split(_read_raw(urls), spec.holdout))
            if by_shard or i % spec.consumers == spec.consumer
        )
        rng = _epoch_rng(spec.seed, epoch, spec.consumer, 1)
        buffer: list[dict[str, Any]] = []
        index = 0
        for raw in mine:
            buffer.append(raw)
            if len(buffer) >= spec.shuffle_buffer:
                yield epoch, index, buffer.pop(int(rng.integers(len(buffer))))
                index += 1
        while buffer:
            yield epoch, index, buffer.pop(int(rng.integers(len(buffer))))
            index += 1
        if index == 0:
            raise ValueError(f"training data split {spec.consumer}/{spec.consumers} is empty (shards: {len(spec.urls)})")
        epoch += 1


class UnusableData(ValueError):
    """Most training samples cannot be decoded: the run stops instead of training on what is left."""


class _BadSamples:
    """Counts samples that fail to decode; warns on the first, stops the run past ``max_fraction``."""

    MIN_SEEN = 20  # judge the fraction only after this many samples

    def __init__(self, max_fraction: float):
        self.max_fraction, self.seen, self.bad, self.shards = max_fraction, 0, 0, set()

    def ok(self) -> None:
        self.seen += 1

    def failed(self, raw: dict[str, Any], exc: Exception) -> None:
        self.seen += 1
        self.bad += 1
        url = str(raw.get("__url__", "?"))
        self.shards.add(os.path.basename(url))
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        if self.bad == 1:
            log.warning("skipping undecodable training sample %r of %s (%s: %s); skipped samples are counted",
                        raw.get("__key__"), url, type(exc).__name__, first)
        if self.seen >= self.MIN_SEEN and self.bad > self.max_fraction * self.seen:
            raise UnusableData(
                f"training data is mostly unusable: {self.bad} of {self.seen} samples could not be decoded "
                f"(train.data.max_bad_fraction {self.max_fraction}); shards: {', '.join(sorted(self.shards))}; "
                f"last: {raw.get('__key__')!r}: {type(exc).__name__}: {first}"
            )


def batch_stream(
    spec: StreamSpec, batch_size: int, sample_cfg: SampleConfig, source_size: int, skip_batches: int = 0,
    max_bad_fraction: float = 0.5, layers_only_batches: int = 0,
) -> Iterator[dict[str, torch.Tensor]]:
    """Collated batches of one consumer, after skipping ``skip_batches`` batches' raw samples undecoded.

    The consumer's first ``layers_only_batches`` batches (counted from the start, skipped ones included) hold the
    lift warm-up's samples (``sample.build_layers_sample``). A sample that fails to decode (truncated member, bad
    image, bad JSON) is skipped, counted and warned about once; past ``max_bad_fraction`` of the samples seen the
    stream raises ``UnusableData`` naming the shards. (A resumed stream skips the same samples again.)
    """
    skip = skip_batches * batch_size
    pending: list[dict[str, Any]] = []
    bad = _BadSamples(max_bad_fraction)
    made = skip_batches  # batches of this consumer so far, skipped ones included
    for n, (epoch, index, raw) in enumerate(raw_stream(spec)):
        if n < skip:
            continue
        key = zlib.crc32(str(raw.get("__key__", "")).encode())
        rng = _epoch_rng(spec.seed, epoch, spec.consumer, index, key)
        try:
            sample = sample_from_raw(raw, sample_cfg, source_size, rng, layers_only=made < layers_only_batches)
        except Exception as exc:  # any decoding failure of this one sample; the cap stops a hopeless run
            bad.failed(raw, exc)
            continue
        bad.ok()
        pending.append(sample)
        if len(pending) == batch_size:
            batch = collate(pending)
            batch["epoch"] = torch.tensor(epoch)
            pending = []
            made += 1
            yield batch


class ShardBatches(torch.utils.data.IterableDataset):
    """One training worker's batches; with DataLoader worker processes each takes a slice of the stream.

    DataLoader visits its workers round-robin, batch by batch; after ``start_batch`` consumed batches,
    worker ``w`` plays consumer role ``(w + start_batch) % n`` so the resumed order equals the original.
    """

    def __init__(
        self, urls: list[str], rank: int, world_size: int, loader_workers: int, batch_size: int,
        sample_cfg: SampleConfig, source_size: int, seed: int, shuffle_buffer: int, start_batch: int = 0,
        holdout: float = 0.0, max_bad_fraction: float = 0.5, layers_only_batches: int = 0,
    ):
        super().__init__()
        self.holdout, self.max_bad_fraction, self.layers_only_batches = holdout, max_bad_fraction, layers_only_batches
        self.urls, self.rank, self.world_size = tuple(urls), rank, world_size
        self.loader_workers, self.batch_size = max(1, loader_workers), batch_size
        self.sample_cfg, self.source_size, self.seed = sample_cfg, source_size, seed
        self.shuffle_buffer, self.start_batch = shuffle_buffer, start_batch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        n = self.loader_workers
        worker = 0 if info is None else info.id
        role = (worker + self.start_batch) % n
        spec = StreamSpec(
            self.urls, self.seed, self.rank * n + role, self.world_size * n, self.shuffle_buffer, self.holdout
        )
        # Batches this role produced before the restart (global batches b < start_batch with b % n == role), and
        # its share of the warm-up's leading layers-only batches, counted the same way.
        return batch_stream(spec, self.batch_size, self.sample_cfg, self.source_size,
                            skip_batches=_role_share(self.start_batch, role, n), max_bad_fraction=self.max_bad_fraction,
                            layers_only_batches=_role_share(self.layers_only_batches, role, n))


def _role_share(batches: int, role: int, n: int) -> int:
    """How many of the global batches b < ``batches`` fall to ``role`` when ``n`` roles take b % n == role in turn."""
    return (batches - role + n - 1) // n if batches > role else 0


def webdataset_batches(
    urls: list[str], rank: int, world_size: int, loader_workers: int, batch_size: int, sample_cfg: SampleConfig,
    source_size: int, seed: int, shuffle_buffer: int, start_batch: int = 0, holdout: float = 0.0,
    max_bad_fraction: float = 0.5, layers_only_batches: int = 0,
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches for one training worker (``loader_workers`` decode processes; 0: in process),
    skipping the held-out split (``holdout``: its fraction) and undecodable samples (``batch_stream``); the first
    ``layers_only_batches`` hold the lift warm-up's samples only."""
    dataset = ShardBatches(
        urls, rank, world_size, loader_workers, batch_size, sample_cfg, source_size, seed, shuffle_buffer, start_batch,
        holdout, max_bad_fraction, layers_only_batches,
    )
    if loader_workers == 0:
        return iter(dataset)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=loader_workers, persistent_workers=False, prefetch_factor=2
    )
    return iter(loader)


# ---- Ray Data reader --------------------------------------------------------------------------------


class _RecipeFn:
    """Ray Data ``flat_map`` callable: raw row -> [flat training sample], or [] for an undecodable one
    (skipped, counted and capped per task as the webdataset reader does)."""

    def __init__(self, sample_cfg: SampleConfig, source_size: int, max_bad_fraction: float = 0.5):
        self.sample_cfg, self.source_size = sample_cfg, source_size
        self.rng = np.random.default_rng()
        self.bad = _BadSamples(max_bad_fraction)

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            sample = sample_from_raw(row, self.sample_cfg, self.source_size, self.rng)
        except Exception as exc:  # any decoding failure of this one sample; the cap stops a hopeless run
            self.bad.failed(row, exc)
            return []
        self.bad.ok()
        return [{k: v for k, v in sample.items() if isinstance(v, np.ndarray)}]


def ray_dataset(
    urls: list[str], sample_cfg: SampleConfig, source_size: int, shuffle: bool = True, holdout: float = 0.0,
    max_bad_fraction: float = 0.5,
):
    """``ray.data.read_webdataset`` (rgba and json members only, raw bytes) -> training split -> decode + recipe."""
    import ray.data

    from lrm_dist.shards.split import is_heldout
    from lrm_dist.storage import arrow_filesystem

    filesystem = arrow_filesystem(urls[0])[0] if urls and is_url(urls[0]) else None  # the job's storage options
    ds = ray.data.read_webdataset(
        urls, decoder=None, fileselect=wanted_member, shuffle="files" if shuffle else None, filesystem=filesystem
    )
    if holdout > 0:
        ds = ds.filter(lambda row: not is_heldout(str(row["__key__"]), holdout))
    return ds.flat_map(_RecipeFn(sample_cfg, source_size, max_bad_fraction))


def ray_data_batches(shard, batch_size: int, start_batch: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches from a Ray Train dataset shard (``get_dataset_shard``), epoch after epoch."""
    seen, epoch = 0, 0
    while True:
        produced = 0
        for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=True):
            produced += 1
            seen += 1
            if seen <= start_batch:
                continue
            batch["epoch"] = torch.tensor(epoch)
            yield batch
        if produced == 0:
            raise ValueError("the Ray Data training shard produced no full batch (fewer samples than micro_batch_size?)")
        epoch += 1
