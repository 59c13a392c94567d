"""The Ray Serve app, run locally on 127.0.0.1 with a tiny model: POST an image, get a GLB back."""

from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.request

import pytest
import trimesh

from lrm_dist.config import load_config
from tests.hostile_images import grey16_png, png_bomb, truncated_png
from tests.serve.conftest import rgba_image


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
@pytest.mark.timeout(240)  # a stalled Ray start fails fast instead of holding the suite
def test_post_image_get_glb(tmp_path, tiny_model_dir, surface_threshold):
    import ray
    from ray import serve

    from lrm_dist.serve.app import run_app

    port = _free_port()
    cfg = load_config(None, [
        f"model.pretrained={tiny_model_dir}", f"serve.density_threshold={surface_threshold}",
        "serve.mesh_resolution=32", "serve.device=cpu", "serve.remove_background=never", f"serve.http_port={port}", "ray.num_cpus=2",
        "serve.max_request_mb=0.5",
    ])
    try:
        run_app(cfg)
        url = f"http://127.0.0.1:{port}/"
        body = rgba_image(tmp_path / "a.png").read_bytes()
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=120) as resp:
            assert resp.headers["Content-Type"] == "model/gltf-binary"
            timings = json.loads(resp.headers["X-LRM-Timings"])
            glb = resp.read()
        mesh = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh")
        assert len(mesh.faces) > 10 and timings["total"] > 0
        for data, reason in ((b"junk", "request body: not a readable image"),
                             (png_bomb(20000, 20000), "request body: image too large to decode safely"),
                             (png_bomb(9000, 9000), "request body: image is 9000x9000; sides must be between"),
                             (truncated_png(), "request body: not a readable image (OSError: image file is truncated")):
            with pytest.raises(urllib.error.HTTPError) as bad:
                urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=60)
            assert bad.value.code == 400 and bad.value.headers["Content-Type"] == "application/json"
            assert json.loads(bad.value.read())["error"].startswith(reason)
        with pytest.raises(urllib.error.HTTPError) as big:  # over serve.max_request_mb: refused unread
            urllib.request.urlopen(urllib.request.Request(url, data=b"x" * 600_000, method="POST"), timeout=60)
        assert big.value.code == 413 and "serve.max_request_mb" in json.loads(big.value.read())["error"]
        grey = grey16_png(tile=(48, 12))  # opaque 48x48 16-bit grey: used whole (remove_background=never)
        with urllib.request.urlopen(urllib.request.Request(url, data=grey, method="POST"), timeout=120) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "model/gltf-binary"
    finally:
        serve.shutdown()
        ray.shutdown()
