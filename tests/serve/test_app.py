"""The Ray Serve app, run locally on 127.0.0.1 with a tiny model: POST an image (raw or multipart), get a mesh back."""

from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.request

import pytest
import trimesh

from lrm_dist.errors import UserError
from tests.hostile_images import grey16_png, png_bomb, truncated_png
from tests.serve.conftest import rgba_image

APP_IMPORT_PATH = "lrm_dist.serve.app:app_builder"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build(args: dict):
    """The application as ``serve run``/``serve deploy`` build it: the import path string, called with ``args``."""
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    return call_user_app_builder_with_args_if_necessary(import_attr(APP_IMPORT_PATH), args)


def _multipart(field: str, data: bytes, filename: str = "x.png") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one file field (as ``curl -F field=@x.png`` sends) and its content type."""
    boundary = "lrm-dist-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _post(url: str, data: bytes, content_type: str | None = None, timeout: float = 120):
    headers = {"Content-Type": content_type} if content_type else {}
    return urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers, method="POST"), timeout=timeout)


def _refused(url: str, data: bytes, content_type: str | None = None) -> tuple[int, str]:
    """(status, error) of a request the app refuses; its body must be JSON ``{"error": ...}``."""
    with pytest.raises(urllib.error.HTTPError) as bad:
        _post(url, data, content_type, timeout=60)
    assert bad.value.headers["Content-Type"] == "application/json"
    return bad.value.code, json.loads(bad.value.read())["error"]


def test_builder_args_validate_and_resolve_the_model_like_the_cli(tmp_path):
    from lrm_dist.serve.app import AppArgs

    assert AppArgs.model_validate({"overrides": "serve.mesh_resolution=64"}).overrides == ["serve.mesh_resolution=64"]
    with pytest.raises(ValueError, match="configs"):
        AppArgs.model_validate({"configs": "x.yaml"})
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"workdir: {tmp_path / 'run'}\n")
    with pytest.raises(UserError, match=f"no model to run: {tmp_path / 'run'}/train/model holds no trained model"):
        _build({"config": str(config)})


@pytest.mark.integration
@pytest.mark.timeout(240)  # a stalled Ray start fails fast instead of holding the suite
def test_post_image_get_mesh(tmp_path, tiny_model_dir, surface_threshold):
    import ray
    from ray import serve

    from lrm_dist.config import load_config
    from lrm_dist.ray_utils import init_ray

    port = _free_port()
    app = _build({"model": str(tiny_model_dir), "overrides": [
        f"serve.density_threshold={surface_threshold}", "serve.mesh_resolution=32", "serve.device=cpu",
        "serve.remove_background=never", "serve.max_request_mb=0.5",
    ]})
    try:
        init_ray(load_config(None, ["ray.num_cpus=2"]).ray)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(app, name="lrm", route_prefix="/")
        url = f"http://127.0.0.1:{port}/"
        png = rgba_image(tmp_path / "a.png").read_bytes()

        with _post(url, png) as resp:  # raw bytes
            assert resp.headers["Content-Type"] == "model/gltf-binary"
            assert resp.headers["Content-Disposition"] == 'attachment; filename="mesh.glb"'
            timings = json.loads(resp.headers["X-LRM-Timings"])
            glb = trimesh.load(io.BytesIO(resp.read()), file_type="glb", force="mesh")
        assert len(glb.faces) > 10 and timings["total"] > 0
        assert {"triplane", "grid", "mesh", "colours", "export"} <= set(timings)

        body, content_type = _multipart("image", png)
        with _post(url, body, content_type) as resp:  # curl -F image=@a.png
            assert resp.headers["Content-Type"] == "model/gltf-binary"
            same = trimesh.load(io.BytesIO(resp.read()), file_type="glb", force="mesh")
        assert same.vertices.shape == glb.vertices.shape

        with _post(f"{url}?format=ply&resolution=16", body, content_type) as resp:
            assert resp.headers["Content-Type"] == "application/x-ply"
            ply = trimesh.load(io.BytesIO(resp.read()), file_type="ply", force="mesh")
        assert 10 < len(ply.faces) < len(glb.faces)  # a 16^3 grid: a coarser mesh than the configured 32^3
        with _post(f"{url}?format=obj", png, "image/png") as resp:
            assert resp.headers["Content-Type"] == "model/obj"
            obj = trimesh.load(io.BytesIO(resp.read()), file_type="obj", force="mesh")
        assert len(obj.faces) == len(glb.faces)
        with _post(f"{url}?framing=keep", png, "image/png") as resp:  # the image as framed, not recentred
            kept = trimesh.load(io.BytesIO(resp.read()), file_type="glb", force="mesh")
        assert len(kept.faces) > 0  # another input image than the recentred one, so another field
        assert kept.vertices.shape != glb.vertices.shape or not (kept.vertices == glb.vertices).all()

        code, error = _refused(f"{url}?format=fbx", png)
        assert code == 400 and error.startswith("format: Input should be 'glb', 'ply' or 'obj'")
        code, error = _refused(f"{url}?framing=centre", png)
        assert code == 400 and error.startswith("framing: Input should be 'recentre' or 'keep'")
        assert _refused(f"{url}?resolution=8", png) == (400, "resolution: Input should be greater than or equal to 16")
        assert _refused(f"{url}?resolution=64", png) == (400, "resolution: at most 32 (serve.max_mesh_resolution)")
        code, error = _refused(f"{url}?threshold=1e9", png)
        assert code == 400 and error.startswith("request body: no surface at density threshold 1000000000.0")
        assert _refused(url, *_multipart("file", png)) == (
            400, "multipart body: no file field 'image' (curl -F image=@x.png)")
        code, error = _refused(url, *_multipart("image", b"junk"))
        assert code == 400 and error.startswith("image field: not a readable image")

        for data, reason in ((b"junk", "request body: not a readable image"),
                             (png_bomb(20000, 20000), "request body: image too large to decode safely"),
                             (png_bomb(9000, 9000), "request body: image is 9000x9000; sides must be between"),
                             (truncated_png(), "request body: not a readable image (OSError: image file is truncated")):
            code, error = _refused(url, data)
            assert code == 400 and error.startswith(reason)
        for data, content_type in ((b"x" * 600_000, None), _multipart("image", b"x" * 600_000)):
            code, error = _refused(url, data, content_type)  # over serve.max_request_mb: refused unread
            assert code == 413 and "serve.max_request_mb (0.5 MB)" in error
        grey = grey16_png(tile=(48, 12))  # opaque 48x48 16-bit grey: used whole (remove_background=never)
        with _post(url, grey) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "model/gltf-binary"

        with urllib.request.urlopen(f"{url}openapi.json", timeout=60) as resp:
            post = json.loads(resp.read())["paths"]["/"]["post"]
        params = {p["name"]: p for p in post["parameters"]}
        assert set(params) == {"format", "resolution", "threshold", "framing"}
        assert params["format"]["schema"]["enum"] == ["glb", "ply", "obj"] and params["format"]["schema"]["default"] == "glb"
        assert (params["resolution"]["schema"]["anyOf"][0]["minimum"], params["resolution"]["schema"]["anyOf"][0]["maximum"]) == (16, 1024)
        assert post["requestBody"]["content"]["multipart/form-data"]["schema"]["required"] == ["image"]
        assert {"image/png", "image/jpeg", "image/webp"} <= set(post["requestBody"]["content"])
        assert set(post["responses"]) == {"200", "400", "413"}
        assert set(post["responses"]["200"]["content"]) == {"model/gltf-binary", "application/x-ply", "model/obj"}
        with urllib.request.urlopen(f"{url}docs", timeout=60) as resp:
            assert resp.status == 200 and "swagger" in resp.read().decode().lower()
    finally:
        serve.shutdown()
        ray.shutdown()
