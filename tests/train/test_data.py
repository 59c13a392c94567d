"""Streaming: shard resolution, the per-consumer split, determinism and resuming at a batch."""

import itertools

import pytest
import torch

from lrm_dist.train.data import StreamSpec, raw_stream, resolve_shards, webdataset_batches


def _epoch_keys(urls, consumer, consumers):
    spec = StreamSpec(tuple(str(u) for u in urls), seed=3, consumer=consumer, consumers=consumers, shuffle_buffer=3)
    keys = []
    for epoch, _, raw in raw_stream(spec):
        if epoch > 0:
            break
        keys.append(raw["__key__"])
    return keys


def test_resolve_shards(synthetic_shards, tmp_path):
    folder = synthetic_shards[0].parent
    assert resolve_shards(str(folder), "unused") == [str(p) for p in synthetic_shards]
    assert resolve_shards(f"{folder}/shard-00000[01].tar", "unused") == [str(p) for p in synthetic_shards[:2]]
    with pytest.raises(FileNotFoundError, match="train.data.shards"):
        resolve_shards(None, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing"):
        resolve_shards(f"{synthetic_shards[0]},{tmp_path}/nope.tar", "unused")


@pytest.mark.parametrize("consumers", [2, 5])  # by shard (3 shards >= 2) and by sample (3 < 5)
def test_every_sample_once_per_epoch_across_consumers(synthetic_shards, consumers):
    per = [_epoch_keys(synthetic_shards, c, consumers) for c in range(consumers)]
    flat = [k for keys in per for k in keys]
    assert len(flat) == 12 and len(set(flat)) == 12
    assert all(per)


def test_epochs_reshuffle(synthetic_shards):
    spec = StreamSpec(tuple(str(u) for u in synthetic_shards), seed=3, consumer=0, consumers=1, shuffle_buffer=4)
    items = list(itertools.islice(raw_stream(spec), 24))
    first = [r["__key__"] for e, _, r in items if e == 0]
    second = [r["__key__"] for e, _, r in items if e == 1]
    assert sorted(first) == sorted(second) and first != second


def _take(it, n):
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize("loader_workers", [0, 2])
def test_resumed_stream_continues_with_the_same_batches(synthetic_shards, small_recipe, loader_workers):
    urls = [str(u) for u in synthetic_shards]
    args = dict(rank=1, world_size=2, loader_workers=loader_workers, batch_size=2, sample_cfg=small_recipe,
                source_size=28, seed=7, shuffle_buffer=2)
    full = _take(webdataset_batches(urls, **args), 5)
    resumed = _take(webdataset_batches(urls, start_batch=3, **args), 2)
    for a, b in zip(full[3:], resumed):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert not torch.equal(full[0]["render_image"], full[1]["render_image"])


def test_training_stream_skips_the_held_out_split():
    from lrm_dist.shards.split import is_heldout
    from lrm_dist.train.data import _training_split

    raws = [{"__key__": f"asset-{i:04d}"} for i in range(400)]
    kept = [r["__key__"] for r in _training_split(iter(raws), 0.25)]
    assert kept == [r["__key__"] for r in raws if not is_heldout(r["__key__"], 0.25)]
    assert 250 < len(kept) < 350
    assert len(list(_training_split(iter(raws), 0.0))) == 400
