"""The upscaler proper: a loaded network on a device, turning lists of images into upscaled images.

Handles what lies around the network: device and dtype (fp16/bf16 + channels_last on GPU, fp32 on CPU),
the RRDB execution form (plain / fused / Triton), torch.compile, CUDA-graph replay, batching of same-size images, grey/RGB/RGBA input
(alpha upscaled separately, by the network or bilinearly), uint8/uint16, and the final ``outscale`` resize.
"""

from __future__ import annotations

import importlib.util
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrm_dist.device import precision_dtype, resolve_device
from lrm_dist.log import get_logger
from lrm_dist.upscale.config import UpscaleConfig
from lrm_dist.upscale.rrdbnet import RRDBNet
from lrm_dist.upscale.tiling import apply_tiled

log = get_logger(__name__)

_GREY = (0.299, 0.587, 0.114)  # alpha comes back from the network as RGB; Real-ESRGAN takes its luma


def pick_device(cfg: UpscaleConfig) -> torch.device:
    """``upscale.device`` through the shared resolver: CUDA when asked for or (``auto``) available, else CPU."""
    return resolve_device(cfg.device, "upscale.device")


def _rrdb_impl(choice: str, gpu: bool, hopper: bool = False) -> str:
    """Resolve ``rrdb_impl``: 'auto' is triton on Hopper-class GPUs (compute capability 9+, TMA; fastest
    measured there), fused on other CUDA GPUs (with compile) and plain on CPU."""
    if choice == "triton" and not gpu:
        raise ValueError("upscale.rrdb_impl='triton' needs a CUDA device")
    if choice != "auto":
        return choice
    if not gpu:
        return "plain"
    return "triton" if hopper and importlib.util.find_spec("triton") is not None else "fused"


class _GraphForward:
    """Replays one captured CUDA graph per input shape (static input/output buffers)."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype)
        if key not in self.graphs:
            static_in = x.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up (cuDNN autotuning, allocator) outside the capture
                    self.net(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.net(static_in)
            self.graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()


class Upsampler:
    """A Real-ESRGAN network ready to upscale lists of images (see :meth:`upscale_images`)."""

    def __init__(self, cfg: UpscaleConfig, net: nn.Module | None = None, default_outscale: float | None = None) -> None:
        """Load ``cfg.model`` (or use ``net``, a loaded network) on the configured device."""
        from lrm_dist.upscale.weights import load_model

        if net is None:
            net, _, default_outscale = load_model(cfg.model, cfg.weights_source, cfg.cache_dir)
        self.cfg = cfg
        self.net_scale: int = net.scale
        self.outscale: float = float(cfg.outscale or default_outscale or net.scale)
        self.device = pick_device(cfg)
        gpu = self.device.type == "cuda"
        self.dtype = precision_dtype(cfg.precision, self.device, "upscale.precision") if gpu else torch.float32
        if gpu:
            torch.backends.cudnn.benchmark = True
        self.memory_format = torch.channels_last if gpu and cfg.channels_last else torch.contiguous_format
        net = net.eval().requires_grad_(False).to(self.device, self.dtype, memory_format=self.memory_format)
        hopper = gpu and torch.cuda.get_device_capability(self.device)[0] >= 9
        self.rrdb_impl = _rrdb_impl(cfg.rrdb_impl, gpu, hopper) if isinstance(net, RRDBNet) else None
        if self.rrdb_impl == "triton":
            from lrm_dist.upscale.rrdb_triton import tritonize_rrdbnet

            try:
                net = tritonize_rrdbnet(net, self.dtype, fp8=cfg.rrdb_fp8)
            except ValueError as exc:  # a width the kernel cannot tile: 'auto' falls back, an explicit choice fails
                if cfg.rrdb_impl != "auto":
                    raise
                log.info("upscale: %s; using rrdb_impl='fused'", exc)
                self.rrdb_impl = "fused"
        if self.rrdb_impl == "fused":
            from lrm_dist.upscale.rrdb_fused import fuse_rrdbnet

            net = fuse_rrdbnet(net)
        self.net = net
        self.rrdb_fp8: bool = self.rrdb_impl == "triton" and cfg.rrdb_fp8
        forward = self.net
        if cfg.compile and gpu and self.rrdb_impl == "triton":
            net.compile_head(cfg.compile_mode)  # the Triton convs cannot go through torch.compile
        elif cfg.compile and gpu:
            forward = torch.compile(forward, mode=cfg.compile_mode, dynamic=False)
        if cfg.cuda_graphs and gpu:
            forward = _GraphForward(forward)
        self._forward = forward
        form = f" ({self.rrdb_impl}{', fp8 dense blocks' if self.rrdb_fp8 else ''})" if self.rrdb_impl else ""
        log.info(
            "upscaler %s: x%d net%s, outscale %.3g, %s %s%s%s", cfg.model, self.net_scale, form, self.outscale,
            self.device, str(self.dtype).removeprefix("torch."), " compiled" if cfg.compile and gpu else "",
            " cuda-graphs" if cfg.cuda_graphs and gpu else "",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The bare network on a (B, 3, H, W) batch in the compute dtype/layout."""
        return self._forward(x.to(self.dtype).contiguous(memory_format=self.memory_format))

    @torch.inference_mode()
    def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) floats in [0, 1] -> (B, 3, H*net_scale, W*net_scale), tiled as configured."""
        cfg = self.cfg
        return apply_tiled(
            self.forward, x, self.net_scale, cfg.tile, cfg.tile_pad, cfg.pre_pad, cfg.batch_size, cfg.tile_blend
        )

    @torch.inference_mode()
    def _upscale_batch(self, images: np.ndarray) -> np.ndarray:
        """(B, H, W, C) uint8/uint16 with C in 1, 3, 4 -> (B, H', W', C) of the same dtype."""
        max_value = 65535.0 if images.dtype == np.uint16 else 255.0
        raw = torch.from_numpy(images.astype(np.int32) if images.dtype == np.uint16 else images)
        x = raw.to(self.device).permute(0, 3, 1, 2).float().div_(max_value)
        n, channels = x.shape[0], x.shape[1]
        rgb = x[:, :3] if channels >= 3 else x[:, :1].expand(-1, 3, -1, -1)
        alpha = x[:, 3:4] if channels == 4 else None
        if alpha is not None and self.cfg.alpha == "model":
            both = self.upscale_tensor(torch.cat([rgb, alpha.expand(-1, 3, -1, -1)], 0)).float()
            out_rgb, out_alpha = both[:n], both[n:]
        else:
            out_rgb = self.upscale_tensor(rgb).float()
            out_alpha = None
            if alpha is not None:
                out_alpha = F.interpolate(alpha, size=out_rgb.shape[-2:], mode="bilinear", align_corners=False)
        grey = torch.tensor(_GREY, device=out_rgb.device).view(1, 3, 1, 1)
        out = out_rgb if channels >= 3 else (out_rgb * grey).sum(1, keepdim=True)
        if out_alpha is not None:
            if out_alpha.shape[1] == 3:
                out_alpha = (out_alpha * grey).sum(1, keepdim=True)
            out = torch.cat([out, out_alpha], 1)
        if self.outscale != self.net_scale:
            size = (int(images.shape[1] * self.outscale), int(images.shape[2] * self.outscale))
            out = F.interpolate(out, size=size, mode="bicubic", align_corners=False, antialias=True)
        out = out.clamp_(0, 1).mul_(max_value).round_()
        out = out.to(torch.int32 if images.dtype == np.uint16 else torch.uint8).permute(0, 2, 3, 1).contiguous()
        if out.is_cuda:  # one copy into page-locked memory instead of a pageable, strided one
            host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
            out = host.copy_(out)
        return out.numpy().astype(images.dtype, copy=False)

    def upscale_images(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Upscale HxW, HxWx1, HxWx3 or HxWx4 uint8/uint16 arrays; same-shape images are batched together."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16):
                raise ValueError(f"image {i}: expected a uint8/uint16 numpy array, got {getattr(image, 'dtype', type(image))}")
            if image.ndim == 2:
                image = image[..., None]
            if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
                raise ValueError(f"image {i}: expected HxW, HxWx1, HxWx3 or HxWx4, got shape {image.shape}")
            groups[(image.shape, image.dtype.str)].append(i)
        out: list[np.ndarray | None] = [None] * len(images)
        step = self.cfg.batch_size
        for (shape, _), indices in groups.items():
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                batch = np.stack([images[i].reshape(shape) for i in chunk])
                for i, result in zip(chunk, self._upscale_batch(batch), strict=True):
                    out[i] = result if images[i].ndim == 3 else result[..., 0]
        return out  # type: ignore[return-value]
