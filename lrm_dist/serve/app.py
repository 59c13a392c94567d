"""The image-to-mesh HTTP app on Ray Serve (FastAPI ingress): POST an image to ``/``, get a GLB (or PLY/OBJ) back.

The image comes as the raw request body (PNG/JPEG/WebP bytes, any content type but multipart) or as
the ``image`` field of a ``multipart/form-data`` upload (``curl -F image=@x.png``). Query options:
``format`` (glb|ply|obj), ``resolution`` (mesh grid side, 16..``serve.max_mesh_resolution``),
``threshold`` (density iso-level). Each replica loads the model once into an ``ImageToMesh`` (around the
shared ``lrm_dist.reconstruct.Reconstructor``) and reuses it;
decoding, reconstruction and encoding run in a thread, so the event loop keeps answering.
Responses: 200 with the mesh and an ``X-LRM-Timings`` header (JSON seconds per step); 400 JSON
``{"error": "<one-line reason>"}`` for a bad image, bad options or no reconstructable surface; 413
over ``serve.max_request_mb`` (from Content-Length before reading, else while reading). OpenAPI:
``/docs`` and ``/openapi.json``.

``app_builder`` is the import path for ``serve run`` and Serve config files (a RayService's
``serveConfigV2``); ``build_app``/``run_app`` serve a ``PipelineConfig`` (``lrm-dist serve``).
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from ray import serve
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from lrm_dist.log import get_logger

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig

log = get_logger(__name__)

MEDIA_TYPES = {"glb": "model/gltf-binary", "ply": "application/x-ply", "obj": "model/obj"}  # PLY has no IANA type
IMAGE_FIELD = "image"


class RequestError(Exception):
    """A refused request: answered as ``status`` with JSON ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ErrorBody(BaseModel):
    """The JSON body of every 400/413 answer."""

    error: str


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_REQUEST_BODY = {
    "required": True,
    "description": f"The image: raw bytes, or the `{IMAGE_FIELD}` field of a multipart form (curl -F {IMAGE_FIELD}=@x.png).",
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": [IMAGE_FIELD],
                                           "properties": {IMAGE_FIELD: {"type": "string", "format": "binary"}}}},
        **{media: _BINARY for media in ("image/png", "image/jpeg", "image/webp", "application/octet-stream")},
    },
}
_RESPONSES = {
    200: {"description": "The mesh in the requested format; header X-LRM-Timings: JSON seconds per step.",
          "content": {media: {} for media in MEDIA_TYPES.values()}},
    400: {"model": ErrorBody, "description": "Bad image, bad options, or no surface at the density threshold."},
    413: {"model": ErrorBody, "description": "Request body larger than serve.max_request_mb."},
}

api = FastAPI(title="lrm-dist", summary="Image to 3D mesh with an LRM (Large Reconstruction Model).")


@api.exception_handler(RequestError)
async def _refused(_: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


@api.exception_handler(RequestValidationError)
async def _bad_option(_: Request, exc: RequestValidationError) -> JSONResponse:
    """Bad query options get the app's 400 ``{"error": ...}`` (one line per problem) instead of FastAPI's 422."""
    problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or e['loc'][0]}: {e['msg']}" for e in exc.errors())
    return JSONResponse({"error": problems}, status_code=400)


def _openapi() -> dict:
    """FastAPI's OpenAPI schema less its 422 answers: bad options get the app's 400 (see ``_bad_option``)."""
    if api.openapi_schema is None:
        schema = FastAPI.openapi(api)
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            operation["responses"].pop("422", None)
    return api.openapi_schema


api.openapi = _openapi


async def _bounded_body(request: Request, limit_mb: float) -> bytes:
    """The request body, refused (413) from its Content-Length before a byte is read, or once it passes the limit."""
    limit = int(limit_mb * 2**20)
    too_large = RequestError(413, f"request body: larger than serve.max_request_mb ({limit_mb:g} MB)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def _form_image(request: Request, body: bytes) -> bytes:
    """The ``image`` file field of an (already read, bounded) multipart body."""

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=4, max_fields=16).parse()
    except MultiPartException as exc:
        raise RequestError(400, f"multipart body: {exc.message}") from None
    try:
        image = form.get(IMAGE_FIELD)
        if not isinstance(image, UploadFile):
            raise RequestError(400, f"multipart body: no file field {IMAGE_FIELD!r} (curl -F {IMAGE_FIELD}=@x.png)")
        return await image.read()
    finally:
        await form.close()


@serve.deployment
@serve.ingress(api)
class LRMService:
    """One replica: a loaded LRM behind ``POST /``."""

    def __init__(self, model_cfg: dict, serve_cfg: dict):
        from lrm_dist.model.config import ModelConfig
        from lrm_dist.model.pretrained import build_model
        from lrm_dist.serve.config import ServeConfig
        from lrm_dist.serve.infer import ImageToMesh

        self.cfg = ServeConfig.model_validate(serve_cfg)
        self.pipeline = ImageToMesh(build_model(ModelConfig.model_validate(model_cfg)), self.cfg)

    def _pipeline(self, resolution: int | None, threshold: float | None):
        """The replica's ``ImageToMesh``, or a shallow copy (same model) meshing at this request's resolution/threshold."""
        if resolution is not None and resolution > self.cfg.resolution_limit:
            raise RequestError(400, f"resolution: at most {self.cfg.resolution_limit} (serve.max_mesh_resolution)")
        return self.pipeline.with_request(resolution, threshold)

    @api.post("/", response_class=Response, responses=_RESPONSES, openapi_extra={"requestBody": _REQUEST_BODY},
              summary="Reconstruct a mesh from one image")
    async def reconstruct(
        self,
        request: Request,
        fmt: Literal["glb", "ply", "obj"] = Query("glb", alias="format", description="Mesh file format."),
        resolution: int | None = Query(None, ge=16, le=1024, description=(
            "Density grid side for meshing (at most serve.max_mesh_resolution); default serve.mesh_resolution.")),
        threshold: float | None = Query(None, gt=0, description=(
            "Density iso-level of the surface; default serve.density_threshold, else the model's calibrated one.")),
        framing: Literal["recentre", "keep"] | None = Query(None, description=(
            "recentre: crop to the object and rescale it (photos); keep: the image as framed (renders); "
            "default serve.framing.")),
    ) -> Response:
        """Image in, mesh out (raw or multipart body; options in the query)."""
        from lrm_dist.reconstruct.mesh_files import mesh_bytes
        from lrm_dist.serve.preprocess import prepare_image

        recon = self._pipeline(resolution, threshold)
        body = await _bounded_body(request, self.cfg.max_request_mb)
        name = "request body"
        if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            body, name = await _form_image(request, body), f"{IMAGE_FIELD} field"
        start = time.perf_counter()

        def work() -> tuple[bytes, dict[str, float]]:  # CPU/GPU-heavy: off the event loop
            image = prepare_image(body, recon.source_size, recon.foreground_ratio, self.cfg.remove_background, name=name,
                                  framing=framing or self.cfg.framing)
            result = recon.reconstruct(image, name=name)
            encode_start = time.perf_counter()
            data = mesh_bytes(result.mesh, fmt)
            return data, {**result.timings, "export": time.perf_counter() - encode_start}

        try:
            data, timings = await asyncio.to_thread(work)
        except ValueError as exc:  # BadImage, or no surface at the density threshold
            raise RequestError(400, str(exc)) from None
        timings = {**{k: round(v, 4) for k, v in timings.items()}, "total": round(time.perf_counter() - start, 4)}
        return Response(data, media_type=MEDIA_TYPES[fmt], headers={
            "X-LRM-Timings": json.dumps(timings), "Content-Disposition": f'attachment; filename="mesh.{fmt}"'})


def build_app(cfg: "PipelineConfig") -> serve.Application:
    """The Serve application for a ``PipelineConfig`` (replicas and GPUs from its ``serve`` section)."""
    opts = {"num_gpus": cfg.serve.gpus_per_replica} if cfg.serve.gpus_per_replica else {}
    return LRMService.options(num_replicas=cfg.serve.num_replicas, ray_actor_options=opts).bind(
        cfg.model.model_dump(), cfg.serve.model_dump()
    )


class AppArgs(BaseModel):
    """Arguments of ``app_builder``: ``serve run ... key=value`` or a Serve config's ``args``."""

    model_config = ConfigDict(extra="forbid")

    config: str | None = Field(None, description="Pipeline config YAML; none: the built-in demo config.")
    model: str | None = Field(None, description="Model folder or hub id; none: model.pretrained, else the trained one.")
    overrides: list[str] = Field(default_factory=list, description="KEY=VALUE config overrides, as --set takes them.")

    @field_validator("overrides", mode="before")
    @classmethod
    def _one_override(cls, value: object) -> object:
        """``serve run`` passes ``overrides=KEY=VALUE`` as one string: that one override."""
        return [value] if isinstance(value, str) else value


def app_builder(args: AppArgs) -> serve.Application:
    """The Serve application from typed args, resolving the model as ``lrm-dist serve`` does (import path target)."""
    from lrm_dist.serve.served_model import load_serving_config

    return build_app(load_serving_config(args.config, args.overrides, args.model))


def run_app(cfg: "PipelineConfig", blocking: bool = False) -> serve.handle.DeploymentHandle:
    """Start (or join) Ray, bind the HTTP proxy to ``serve.http_host:http_port`` and deploy the app at ``/``."""
    from lrm_dist.ray_utils import init_ray

    init_ray(cfg.ray)
    serve.start(http_options={"host": cfg.serve.http_host, "port": cfg.serve.http_port})
    log.info("serving image -> mesh at http://%s:%d/ (OpenAPI: /docs)", cfg.serve.http_host, cfg.serve.http_port)
    return serve.run(build_app(cfg), name="lrm", route_prefix="/", blocking=blocking)
