"""Streaming: shard resolution, the per-consumer split, determinism and resuming at a batch."""

import itertools

import pytest
import torch

from lrm_dist.config import PipelineConfig
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
    assert resolve_shards(str(folder)) == [str(p) for p in synthetic_shards]
    assert resolve_shards(f"{folder}/shard-00000[01].tar") == [str(p) for p in synthetic_shards[:2]]
    with pytest.raises(FileNotFoundError, match="train.data.shards"):
        resolve_shards(PipelineConfig(workdir=str(tmp_path)).layout().train_shards)  # <workdir>/render/shards
    with pytest.raises(FileNotFoundError, match="missing"):
        resolve_shards(f"{synthetic_shards[0]},{tmp_path}/nope.tar")


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


@pytest.mark.parametrize("loader_workers", [0, 2])
def test_the_warm_up_batches_hold_the_source_view_alone_and_resume_exactly(synthetic_shards, small_recipe, loader_workers):
    """The first ``layers_only_batches`` batches (across loader processes, in the order training reads them) carry
    only the lift warm-up's members, equal to the full samples' source parts; the rest are full; a resumed stream
    continues with the same batches."""
    urls = [str(u) for u in synthetic_shards]
    recipe = small_recipe.model_copy(update={"source_layers": True})
    args = dict(rank=0, world_size=1, loader_workers=loader_workers, batch_size=2, sample_cfg=recipe, source_size=28,
                seed=3, shuffle_buffer=2)
    plain = _take(webdataset_batches(urls, **args), 5)
    warm = _take(webdataset_batches(urls, layers_only_batches=3, **args), 5)
    slim = {"source_image", "source_camera", "source_extent", "source_first_depth", "source_last_depth",
            "source_layers_mask", "views", "epoch"}
    for i in range(3):
        assert set(warm[i]) == slim
        for key in slim - {"views"}:
            assert torch.equal(warm[i][key], plain[i][key]), key
    for i in (3, 4):
        assert warm[i].keys() == plain[i].keys()
        for key in plain[i]:
            assert torch.equal(warm[i][key], plain[i][key]), key
    resumed = _take(webdataset_batches(urls, start_batch=2, layers_only_batches=3, **args), 3)
    assert set(resumed[0]) == slim and "render_image" in resumed[1]
    for a, b in zip(warm[2:], resumed):
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_training_stream_skips_the_held_out_split():
    from lrm_dist.shards.split import is_heldout
    from lrm_dist.train.data import _training_split

    raws = [{"__key__": f"asset-{i:04d}"} for i in range(400)]
    kept = [r["__key__"] for r in _training_split(iter(raws), 0.25)]
    assert kept == [r["__key__"] for r in raws if not is_heldout(r["__key__"], 0.25)]
    assert 250 < len(kept) < 350
    assert len(list(_training_split(iter(raws), 0.0))) == 400


def _corrupt_copy(src, dst, bad_keys):
    """Copy a shard tar, replacing the rgba PNGs of ``bad_keys`` with garbage bytes."""
    import io
    import tarfile

    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for info in tin.getmembers():
            data = tin.extractfile(info).read()
            if info.name.split(".", 1)[0] in bad_keys and info.name.endswith(".rgba.png"):
                data = b"not a png"
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def _keys(path):
    import tarfile

    with tarfile.open(path) as tar:
        return sorted({m.name.split(".", 1)[0] for m in tar.getmembers()})


def test_undecodable_samples_are_skipped_and_counted(synthetic_shards, small_recipe, tmp_path, caplog):
    from lrm_dist.train.data import StreamSpec, batch_stream

    bad_key = _keys(synthetic_shards[0])[0]
    corrupt = tmp_path / "shard-corrupt.tar"
    _corrupt_copy(synthetic_shards[0], corrupt, {bad_key})
    urls = (str(corrupt), *map(str, synthetic_shards[1:]))
    spec = StreamSpec(urls, seed=0, consumer=0, consumers=1, shuffle_buffer=2)
    batches = list(itertools.islice(batch_stream(spec, 1, small_recipe, 28), 11))  # one epoch: 12 - 1 samples
    assert len(batches) == 11
    assert "skipping undecodable training sample" in caplog.text and bad_key in caplog.text


def test_mostly_unusable_data_stops_with_one_line_naming_the_shards(synthetic_shards, small_recipe, tmp_path):
    from lrm_dist.train.data import StreamSpec, UnusableData, batch_stream

    urls = []
    for i, shard in enumerate(synthetic_shards):
        out = tmp_path / f"broken-{i}.tar"
        _corrupt_copy(shard, out, set(_keys(shard)[:3]))  # 3 of every 4 samples broken
        urls.append(str(out))
    spec = StreamSpec(tuple(urls), seed=0, consumer=0, consumers=1, shuffle_buffer=2)
    with pytest.raises(UnusableData, match="mostly unusable") as err:
        list(itertools.islice(batch_stream(spec, 1, small_recipe, 28), 100))
    message = str(err.value)
    assert "\n" not in message and "broken-0.tar" in message and "max_bad_fraction" in message


def test_ray_data_recipe_skips_and_counts_undecodable_samples(synthetic_shards, small_recipe, tmp_path, caplog):
    from lrm_dist.train.data import StreamSpec, _RecipeFn, raw_stream

    bad_key = _keys(synthetic_shards[0])[0]
    corrupt = tmp_path / "shard-corrupt.tar"
    _corrupt_copy(synthetic_shards[0], corrupt, {bad_key})
    spec = StreamSpec((str(corrupt),), seed=0, consumer=0, consumers=1, shuffle_buffer=1)
    recipe = _RecipeFn(small_recipe, 28)
    out = {}
    for _, _, raw in itertools.islice(raw_stream(spec), len(_keys(corrupt))):
        out[raw["__key__"]] = recipe(raw)
    assert out[bad_key] == [] and all(len(rows) == 1 for key, rows in out.items() if key != bad_key)
    assert (recipe.bad.bad, recipe.bad.seen) == (1, len(out))
    assert "skipping undecodable training sample" in caplog.text and bad_key in caplog.text


def test_training_reads_depth_under_either_schema_name(synthetic_shards, small_recipe):
    import numpy as np

    from lrm_dist.train.decode import sample_from_raw, wanted_member

    members = ("depth.png16", "depth.png", "rgba.png", "normal.png", "occupancy.npz")
    assert all(wanted_member(f"a.000.{m}") for m in members)
    assert wanted_member("a.meta.json") and not wanted_member("a.000.albedo.png")
    spec = StreamSpec((str(synthetic_shards[0]),), seed=0, consumer=0, consumers=1, shuffle_buffer=1)
    _, _, raw = next(raw_stream(spec))
    assert "000.depth.png16" in raw and "000.normal.png" in raw
    schema2 = {k.removesuffix("16") if k.endswith(".depth.png16") else k: v for k, v in raw.items()}
    assert "000.depth.png" in schema2
    recipe = small_recipe.model_copy(update={"normal": True})
    new = sample_from_raw(raw, recipe, 28, np.random.default_rng(5))
    old = sample_from_raw(schema2, recipe, 28, np.random.default_rng(5))
    mask = new["render_depth_mask"] > 0
    assert mask.any() and np.allclose(new["render_depth"][mask], 1.5, atol=1e-3)  # the synthetic disc's depth
    for key in ("render_depth", "render_depth_mask", "source_depth", "render_image", "render_normal"):
        np.testing.assert_array_equal(old[key], new[key])
    normal_mask = new["render_normal_mask"] > 0  # normals decoded where the depth is set, unit length there
    assert normal_mask.any() and np.allclose(np.linalg.norm(new["render_normal"], axis=1)[normal_mask[:, 0]], 1.0, atol=1e-4)
    plain = sample_from_raw(raw, small_recipe, 28, np.random.default_rng(5))  # normal None outside a TrainConfig: off
    assert not plain["render_normal_mask"].any()


def test_a_normal_map_of_another_size_is_a_bad_sample(synthetic_shards, small_recipe):
    import io

    import numpy as np
    from PIL import Image

    from lrm_dist.shards.sample import BadSample
    from lrm_dist.train.decode import sample_from_raw

    spec = StreamSpec((str(synthetic_shards[0]),), seed=0, consumer=0, consumers=1, shuffle_buffer=1)
    _, _, raw = next(raw_stream(spec))
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8), "RGB").save(buf, format="PNG")
    hostile = {k: (buf.getvalue() if k.endswith(".normal.png") else v) for k, v in raw.items()}
    with pytest.raises(BadSample, match=r"normal\.png is 8x8 px, its view's depth"):
        sample_from_raw(hostile, small_recipe.model_copy(update={"normal": True}), 28, np.random.default_rng(0))


def test_training_reads_a_lean_webp_shard_the_same_and_trains_without_normals(synthetic_shards, small_recipe):
    import numpy as np

    from lrm_dist.shards.config import ShardsConfig
    from lrm_dist.shards.sample import decode_sample, encode_sample
    from lrm_dist.train.decode import sample_from_raw, wanted_member

    assert wanted_member("a.000.rgba.webp") and wanted_member("a.000.normal.webp")
    spec = StreamSpec((str(synthetic_shards[0]),), seed=0, consumer=0, consumers=1, shuffle_buffer=1)
    _, _, raw = next(raw_stream(spec))
    decoded = decode_sample(raw)
    recipe = small_recipe.model_copy(update={"normal": True})
    for settings, has_normal in (({"image_format": "webp"}, True), ({"image_format": "webp", "normal_maps": False}, False)):
        members = encode_sample(decoded, ShardsConfig(**settings))
        lean = {"__key__": raw["__key__"], **{k.split(".", 1)[1]: v for k, v in members.items()}}
        assert "000.rgba.webp" in lean and "000.rgba.png" not in lean
        new = sample_from_raw(raw, recipe, 28, np.random.default_rng(5))
        got = sample_from_raw(lean, recipe, 28, np.random.default_rng(5))
        for key in ("render_image", "render_alpha", "render_depth", "source_image"):
            np.testing.assert_array_equal(got[key], new[key])  # lossless WebP: the same training sample
        if has_normal:
            np.testing.assert_array_equal(got["render_normal"], new["render_normal"])
        else:  # no normal maps: the normals of the depth maps stand in (the synthetic depth is constant: a plane
            # facing each camera, so its normals are the camera frame's +z), the rest trains
            m = got["render_normal_mask"][:, 0] > 0
            assert m.sum() >= 0.5 * (got["render_depth_mask"] > 0).sum()
            np.testing.assert_allclose(got["render_normal"].transpose(0, 2, 3, 1)[m], [[0.0, 0.0, 1.0]] * int(m.sum()),
                                       atol=1e-5)
