"""The storage layer against a real S3 server (SeaweedFS on 127.0.0.1, ``conftest.s3_server``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lrm_dist.storage import (Storage, arrow_filesystem, configure, exists, glob, join, local_file, local_folder,
                              register_webdataset_urls, upload_folder)

REPO = Path(__file__).resolve().parents[2]


def test_storage_round_trip(s3_env):
    url = f"s3://{s3_env.bucket}/round-trip"
    st = Storage(url)
    assert not st.is_local and st.listdir() == [] and not st.exists("a.bin")
    st.makedirs("sub")
    st.write_bytes_atomic("a.bin", b"alpha")
    st.write_bytes_atomic("sub/b.bin", b"beta" * 1000)
    assert st.read_bytes("a.bin") == b"alpha" and st.size("sub/b.bin") == 4000
    assert st.listdir() == ["a.bin", "sub"] and st.listdir("sub") == ["b.bin"]  # no .tmp left behind
    st.move("a.bin", "c.bin")
    assert not st.exists("a.bin") and st.read_bytes("c.bin") == b"alpha"
    with st.open("c.bin") as fh:
        assert fh.read() == b"alpha"
    st.remove("c.bin")
    st.remove("c.bin")  # removing what is gone is no error
    assert st.listdir() == ["sub"]
    assert st.url_of("sub/b.bin") == f"{url}/sub/b.bin" and exists(st.url_of("sub/b.bin"))
    assert glob(f"{url}/sub/*.bin") == [f"{url}/sub/b.bin"]
    with local_file(f"{url}/sub/b.bin") as path:
        assert Path(path).read_bytes() == b"beta" * 1000 and path.endswith("b.bin")
    assert not Path(path).exists()  # the local copy is gone afterwards
    st.remove_tree("sub")
    # No object is left (SeaweedFS, unlike AWS, may still list the emptied folder as a prefix).
    left = s3_env.fs().find(f"{s3_env.bucket}/round-trip", detail=True)
    assert [name for name, info in left.items() if info["type"] == "file"] == []
    # The server really holds the objects (another client sees them).
    st.write_bytes_atomic("x/y.txt", b"seen")
    assert s3_env.fs().cat_file(f"{s3_env.bucket}/round-trip/x/y.txt") == b"seen"


def test_folders_upload_and_come_back_cached(s3_env, tmp_path, monkeypatch):
    monkeypatch.setenv("LRM_DIST_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "model"
    (src / "deep").mkdir(parents=True)
    (src / "config.json").write_text('{"a": 1}')
    (src / "model.safetensors").write_bytes(b"\0" * 100)
    (src / "deep" / "x.txt").write_text("x")
    url = f"s3://{s3_env.bucket}/folders/model"
    order = upload_folder(src, url, last=("config.json",))
    assert order[-1] == "config.json" and sorted(order) == ["config.json", "deep/x.txt", "model.safetensors"]
    local = Path(local_folder(url))
    assert local.is_relative_to(tmp_path / "cache")
    assert (local / "config.json").read_text() == '{"a": 1}' and (local / "model.safetensors").stat().st_size == 100
    stamp = (local / "model.safetensors").stat().st_mtime_ns
    assert Path(local_folder(url)) == local and (local / "model.safetensors").stat().st_mtime_ns == stamp  # cached
    Storage(url).write_bytes_atomic("model.safetensors", b"\1" * 7)  # changed: fetched again
    assert (Path(local_folder(url)) / "model.safetensors").read_bytes() == b"\1" * 7
    with pytest.raises(FileNotFoundError):
        local_folder(f"s3://{s3_env.bucket}/folders/missing")


def test_options_come_from_the_config_and_reach_other_processes(s3_server, monkeypatch, tmp_path):
    """``storage.options`` alone (credentials from the environment, no AWS_ENDPOINT_URL) reach the server,
    here and in a child process (what Ray workers are)."""
    import fsspec

    from lrm_dist.config import load_config

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("FSSPEC_S3", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    saved = {k: dict(v) for k, v in fsspec.config.conf.items()}
    url = f"s3://{s3_server.bucket}/options"
    try:
        fsspec.config.conf.pop("s3", None)
        load_config(None, [f"workdir={url}", f"storage.options={{endpoint_url: '{s3_server.endpoint}'}}"])
        fsspec.get_filesystem_class("s3").clear_instance_cache()
        Storage(url).write_bytes_atomic("here.txt", b"here")
        code = f"from lrm_dist.storage import Storage; Storage({url!r}).write_bytes_atomic('child.txt', b'child')"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 0, done.stderr[-2000:]
        assert sorted(s3_server.fs().ls(f"{s3_server.bucket}/options", detail=False)) == [
            f"{s3_server.bucket}/options/child.txt", f"{s3_server.bucket}/options/here.txt"]
    finally:
        for name in ("FSSPEC_S3", "FSSPEC_S3A"):  # what load_config set for the processes it starts
            os.environ.pop(name, None)
        fsspec.config.conf.clear()
        fsspec.config.conf.update(saved)
        fsspec.get_filesystem_class("s3").clear_instance_cache()


def test_configure_ignores_local_workdirs(monkeypatch, tmp_path):
    import fsspec

    monkeypatch.delenv("FSSPEC_FILE", raising=False)
    configure(str(tmp_path), {"endpoint_url": "http://127.0.0.1:1"})
    assert "FSSPEC_FILE" not in os.environ and "file" not in fsspec.config.conf


def test_shards_stream_from_the_bucket(s3_env):
    """webdataset (the trainer's reader) and pyarrow (Ray Train's storage) both reach the bucket."""
    url = join(f"s3://{s3_env.bucket}", "wds", "shard-000000.tar")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for key in ("a", "b"):
            for member, data in (("meta.json", json.dumps({"k": key}).encode()), ("txt", key.encode())):
                info = tarfile.TarInfo(f"{key}.{member}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    Storage(url.rsplit("/", 1)[0]).write_bytes_atomic("shard-000000.tar", buf.getvalue())
    import webdataset as wds

    register_webdataset_urls()
    keys = [s["__key__"] for s in wds.tarfile_to_samples()(iter([{"url": url}]))]
    assert keys == ["a", "b"]
    fs, path = arrow_filesystem(f"s3://{s3_env.bucket}/wds")
    assert path == f"{s3_env.bucket}/wds"
    with fs.open_input_stream(f"{path}/shard-000000.tar") as fh:
        assert fh.read() == buf.getvalue()


def test_render_store_and_readers_on_the_bucket(s3_env):
    """The render output store (shards, manifests, repair on open) and the plain-webdataset reader."""
    from lrm_dist.shards.config import ShardsConfig
    from lrm_dist.shards.reader import iter_render_samples
    from lrm_dist.shards.store import ShardStore, done_row
    from tests.shards.shard_helpers import members
    from lrm_dist.shards.verify import verify_render_dir
    from lrm_dist.config import PipelineConfig
    from lrm_dist.train.data import resolve_shards

    url = f"s3://{s3_env.bucket}/store/render"
    store = ShardStore(url, ShardsConfig(max_samples=2))
    store.open()
    for key in "abc":
        store.add(key, members(key), done_row(key, "h1", None, 2))
    store.close()
    default = PipelineConfig(workdir=f"s3://{s3_env.bucket}/store").layout().train_shards  # <workdir>/render/shards
    assert [u.rsplit("/", 1)[1] for u in resolve_shards(default)] == [
        "shard-000000.tar", "shard-000001.tar"]
    assert sorted(verify_render_dir(url)) == ["a", "b", "c"]
    assert sorted(s["asset_id"] for s in iter_render_samples(url)) == ["a", "b", "c"]
    again = ShardStore(url)
    again.open()
    assert all(again.is_done(key, "h1") for key in "abc")


def test_ray_data_reads_shards_from_the_bucket(s3_env):
    """Ray Data (the ``ray_data`` training reader's ``read_webdataset``) gets the job's filesystem; in a
    fresh process, as a job would run it."""
    from lrm_dist.shards.store import ShardStore, done_row
    from tests.shards.shard_helpers import members

    url = f"s3://{s3_env.bucket}/ray-data/render"
    store = ShardStore(url)
    store.open()
    for key in "ab":
        store.add(key, members(key), done_row(key, "h1", None, 2))
    store.close()
    code = f"""
from lrm_dist.ray_utils import RayConfig, init_ray
from lrm_dist.shards.manifest import shard_urls
from lrm_dist.shards.reader import read_ray_dataset
init_ray(RayConfig(num_cpus=1))
print("keys", sorted(r["__key__"] for r in read_ray_dataset(shard_urls({url!r})).take_all()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert done.returncode == 0 and "keys ['a', 'b']" in done.stdout, (done.stdout + done.stderr)[-3000:]


def test_infer_and_serve_find_the_trained_model_in_the_bucket(s3_env, tmp_path, monkeypatch):
    """With an object-store workdir, serving resolves <workdir>/train/model there and loads a cached copy."""
    import torch

    from lrm_dist.model.config import ModelConfig
    from lrm_dist.model.lrm import LRM
    from lrm_dist.model.pretrained import from_pretrained, resolve_pretrained, save_pretrained
    from lrm_dist.errors import UserError
    from lrm_dist.serve.served_model import load_serving_config

    monkeypatch.setenv("LRM_DIST_CACHE", str(tmp_path / "cache"))
    workdir = f"s3://{s3_env.bucket}/serving"
    config = tmp_path / "cfg.yaml"
    config.write_text(f"workdir: {workdir}\n")
    with pytest.raises(UserError, match="holds no trained model"):
        load_serving_config(str(config), [])
    torch.manual_seed(0)
    model = LRM(ModelConfig(size="tiny").arch())
    upload_folder(save_pretrained(model, tmp_path / "model"), f"{workdir}/train/model", last=("config.json",))
    cfg = load_serving_config(str(config), [])
    assert cfg.model.pretrained == f"{workdir}/train/model"
    folder = resolve_pretrained(cfg.model.pretrained)
    assert folder.is_dir() and str(folder).startswith(str(tmp_path / "cache"))
    loaded = from_pretrained(cfg.model.pretrained)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
