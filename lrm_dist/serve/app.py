"""The image-to-GLB HTTP app on Ray Serve: POST an image (PNG/JPEG/WebP bytes) to ``/``, get a GLB back.

Each replica loads the model once (``model`` section of the config) and reuses ``Reconstructor``.
Responses: 200 ``model/gltf-binary`` with an ``X-LRM-Timings`` header (JSON seconds per step); 400
with JSON ``{"error": "<one-line reason>"}`` for a bad image (unreadable, truncated, a decompression
bomb: refused from its header) or an image with no reconstructable surface.
"""

from __future__ import annotations

import asyncio
import json
import time

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from lrm_dist.log import get_logger

log = get_logger(__name__)


@serve.deployment
class LRMService:
    """One replica: a loaded LRM behind ``POST /``."""

    def __init__(self, model_cfg: dict, serve_cfg: dict):
        from lrm_dist.model.config import ModelConfig
        from lrm_dist.model.pretrained import build_model
        from lrm_dist.serve.config import ServeConfig
        from lrm_dist.serve.pipeline import Reconstructor

        self.cfg = ServeConfig.model_validate(serve_cfg)
        self.recon = Reconstructor(build_model(ModelConfig.model_validate(model_cfg)), self.cfg)

    async def __call__(self, request: Request) -> Response:
        from lrm_dist.serve.mesh import mesh_bytes
        from lrm_dist.serve.preprocess import prepare_image

        if request.method != "POST":
            return PlainTextResponse("POST an image (PNG/JPEG/WebP bytes) to get a GLB back\n", status_code=405)
        limit = int(self.cfg.max_request_mb * 2**20)
        too_large = JSONResponse({"error": f"request body: larger than serve.max_request_mb ({self.cfg.max_request_mb:g} MB)"},
                                 status_code=413)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before reading a byte
            return too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return too_large
        start = time.perf_counter()

        def work():  # CPU/GPU-heavy: off the event loop, so the replica keeps answering
            image = prepare_image(bytes(body), self.recon.source_size, self.recon.foreground_ratio,
                                  self.cfg.remove_background, name="request body")
            return self.recon.reconstruct(image, name="request body")

        try:
            result = await asyncio.to_thread(work)
        except ValueError as exc:  # BadImage, or no surface at the density threshold
            return JSONResponse({"error": str(exc)}, status_code=400)
        glb = mesh_bytes(result.mesh, "glb")
        timings = {**{k: round(v, 4) for k, v in result.timings.items()}, "total": round(time.perf_counter() - start, 4)}
        return Response(glb, media_type="model/gltf-binary", headers={"X-LRM-Timings": json.dumps(timings)})


def build_app(cfg) -> serve.Application:
    """The Serve application for a ``PipelineConfig`` (replicas and GPUs from its ``serve`` section)."""
    opts = {"num_gpus": cfg.serve.gpus_per_replica} if cfg.serve.gpus_per_replica else {}
    return LRMService.options(num_replicas=cfg.serve.num_replicas, ray_actor_options=opts).bind(
        cfg.model.model_dump(), cfg.serve.model_dump()
    )


def run_app(cfg, blocking: bool = False) -> serve.handle.DeploymentHandle:
    """Start (or join) Ray, bind the HTTP proxy to ``serve.http_host:http_port`` and deploy the app at ``/``."""
    from lrm_dist.ray_utils import init_ray

    init_ray(cfg.ray)
    serve.start(http_options={"host": cfg.serve.http_host, "port": cfg.serve.http_port})
    log.info("serving image -> GLB at http://%s:%d/", cfg.serve.http_host, cfg.serve.http_port)
    return serve.run(build_app(cfg), name="lrm", route_prefix="/", blocking=blocking)
