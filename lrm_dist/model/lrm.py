"""The LRM: image + source camera -> triplanes -> volume-rendered views (OpenLRM v1.1 architecture).

Parameter names and shapes equal OpenLRM's ``ModelLRM`` so its released checkpoints load with
``strict=True`` (see ``lrm_dist.model.pretrained``). Training uses ``forward_planes`` and ``render``
(patch rendering for crops); inference adds ``lrm_dist.serve``'s mesh extraction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lrm_dist.model.camera_embedder import CameraEmbedder
from lrm_dist.model.config import LRMConfig
from lrm_dist.model.encoder import DinoV2Encoder
from lrm_dist.model.lift import ImageLift, pack
from lrm_dist.model.renderer import camera_rays, render_rays
from lrm_dist.model.synthesizer import Synthesizer
from lrm_dist.model.transformer import TransformerDecoder

Patch = tuple[int, int, int, int] | tuple[torch.Tensor, int, int]


def split_render_cameras(render_cameras: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenLRM's 25-number render cameras [..., 25] -> (c2w [..., 4, 4], normalised intrinsics [..., 4])."""
    if render_cameras.shape[-1] != 25:
        raise ValueError(f"render cameras must have 25 numbers in the last axis, got {tuple(render_cameras.shape)}")
    c2w = render_cameras[..., :16].unflatten(-1, (4, 4))
    k = render_cameras[..., 16:25]
    return c2w, torch.stack([k[..., 0], k[..., 4], k[..., 2], k[..., 5]], dim=-1)


class LRM(nn.Module):
    """Large Reconstruction Model: DINOv2 encoder, camera-modulated triplane transformer, triplane NeRF."""

    def __init__(self, config: LRMConfig):
        super().__init__()
        if config.triplane_high_res != 2 * config.triplane_low_res:
            raise ValueError(
                f"triplane_high_res ({config.triplane_high_res}) must be 2 * triplane_low_res ({config.triplane_low_res})"
            )
        self.config = config
        self.encoder = DinoV2Encoder(config.encoder_model_name, freeze=config.encoder_freeze)
        if self.encoder.model.arch.dim != config.encoder_feat_dim:
            raise ValueError(
                f"encoder_feat_dim {config.encoder_feat_dim} does not match {config.encoder_model_name}'s "
                f"width {self.encoder.model.arch.dim}"
            )
        dim, low = config.transformer_dim, config.triplane_low_res
        self.camera_embedder = CameraEmbedder(config.camera_embed_dim)
        self.pos_embed = nn.Parameter(torch.randn(1, 3 * low * low, dim) * dim**-0.5)
        self.transformer = TransformerDecoder(
            config.transformer_layers, dim, config.transformer_heads,
            cond_dim=config.encoder_feat_dim, mod_dim=config.camera_embed_dim,
        )
        self.upsampler = nn.ConvTranspose2d(dim, config.triplane_dim, kernel_size=2, stride=2)
        self.synthesizer = Synthesizer(config.triplane_dim, config.rendering_samples_per_ray, volume=config.image_lift,
                                       interval_side=config.resolved_source_size() // 2 if config.lift_interval else None,
                                       volume_resolution=config.lift_resolution)
        self.lift = (ImageLift(config.triplane_dim, config.resolved_lift_resolution(), refine=config.lift_refine,
                               encoder=config.lift_encoder, encoder_width=config.lift_encoder_width)
                     if config.image_lift else None)

    @property
    def source_size(self) -> int:
        """The input image side the model expects (pixels)."""
        return self.config.resolved_source_size()

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute encoder and transformer block activations in backward (saves memory in training)."""
        self.encoder.model.gradient_checkpointing = enabled
        self.transformer.gradient_checkpointing = enabled

    def compile_blocks(self, **options: Any) -> None:
        """``torch.compile`` each encoder and transformer block in place (``nn.Module.compile``, ``options`` its
        keywords), and the image lift's per-cell part and refiner: fewer, fused kernels for the step's largest
        parts; parameter names, checkpoints and DeepSpeed see the same modules."""
        for block in (*self.encoder.model.blocks, *self.transformer.layers):
            block.compile(**options)
        if self.lift is not None:
            self.lift.compile_parts(**options)

    def forward_planes(self, image: torch.Tensor, source_cam_features: torch.Tensor) -> torch.Tensor:
        """Triplanes from images.

        image: [N, 3, S, S] RGB in [0, 1] on a white background, S a multiple of 14 (``source_size``);
        source_cam_features: [N, 16] (``geometry.cameras.camera_features`` of the canonicalised source
        camera). Returns planes [N, 3, C, 2L, 2L] (C = triplane_dim, L = triplane_low_res), unbounded floats;
        with ``image_lift``, [N, 3 + 2L, C, 2L, 2L]: the lifted feature volume packed behind them (``lift.pack``; more
        or fewer slices with a ``lift_resolution`` other than 2L;
        with ``lift_interval`` a few more slices: the depth layers and the camera, and float32).
        """
        return self._planes(image, source_cam_features)[0]

    def _planes(self, image: torch.Tensor, source_cam_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward_planes`` plus the lift's predicted front and back depth of the source view (None without a lift)."""
        if image.shape[0] != source_cam_features.shape[0]:
            raise ValueError(f"batch mismatch: image {tuple(image.shape)} vs camera {tuple(source_cam_features.shape)}")
        n, low = image.shape[0], self.config.triplane_low_res
        image_tokens = self.encoder(image)
        camera = self.camera_embedder(source_cam_features.to(image_tokens.dtype))
        tokens = self.transformer(self.pos_embed.expand(n, -1, -1), image_tokens, camera)
        tokens = tokens.view(n, 3, low, low, -1).permute(0, 1, 4, 2, 3).reshape(n * 3, -1, low, low)
        planes = self.upsampler(tokens)
        planes = planes.view(n, 3, *planes.shape[1:])
        if self.lift is None:
            return planes, None
        volume, layers = self.lift(image, source_cam_features)
        interval = (layers, source_cam_features) if self.config.lift_interval else None
        return pack(planes, volume.to(planes.dtype), interval), layers

    def render(
        self, planes: torch.Tensor, c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int,
        patch: Patch | None = None, bg_color: float | torch.Tensor = 1.0, chunk: int | None = None,
        jitter: bool | None = None,
    ) -> dict[str, torch.Tensor]:
        """Volume-render views (or one patch of each) of the triplanes.

        planes: [N, 3, C, H', W'] from ``forward_planes``; c2w: [N, V, 4, 4] OpenGL camera-to-world in the
        canonical frame; intrinsics: [N, V, 4] normalised (fx/W, fy/H, cx/W, cy/H) of the full
        ``height x width`` image; patch: None (whole image), ``(y0, x0, h, w)`` for every view, or
        ``(anchors [N, V, 2] (row, col), h, w)`` per view; bg_color: a float, [N, V] or [N, V, 3] in
        [0, 1]; chunk: rays per pass (None: all at once); jitter: random sample positions (default: in
        training mode). Returns, for h x w pixels: ``rgb`` [N, V, 3, h, w] (about [0, 1], composited
        over bg_color), ``opacity`` [N, V, 1, h, w] in [0, 1], ``depth`` [N, V, 1, h, w]: opacity-normalised
        expected planar depth (distance along the camera's -z, as Blender's depth pass; 0 for rays that
        miss the [-1, 1]^3 box).
        """
        if c2w.ndim != 4 or c2w.shape[-2:] != (4, 4) or intrinsics.shape != (*c2w.shape[:2], 4):
            raise ValueError(f"c2w must be [N, V, 4, 4] and intrinsics [N, V, 4], got {tuple(c2w.shape)}, {tuple(intrinsics.shape)}")
        n, v = c2w.shape[:2]
        jitter = self.training if jitter is None else jitter
        anchors, hw = self._patch_anchors(patch, n, v, height, width, c2w.device)
        c2w, intrinsics = c2w.float(), intrinsics.float()
        origins, dirs, cosine = camera_rays(c2w, intrinsics, height, width, anchors, hw)
        h, w = hw
        origins, dirs = origins.reshape(n, v * h * w, 3), dirs.reshape(n, v * h * w, 3)

        def field(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            rgb, raw = self.synthesizer.field(planes, points)
            return rgb.float(), raw.float()

        step = origins.shape[1] if chunk is None else chunk
        parts = [
            render_rays(field, origins[:, s : s + step], dirs[:, s : s + step], self.synthesizer.samples_per_ray, jitter)
            for s in range(0, origins.shape[1], step)
        ]
        rgb = torch.cat([p.rgb for p in parts], 1).view(n, v, h, w, 3)
        opacity = torch.cat([p.opacity for p in parts], 1).view(n, v, h, w, 1)
        distance = torch.cat([p.distance for p in parts], 1).view(n, v, h, w, 1)
        bg = torch.as_tensor(bg_color, dtype=rgb.dtype, device=rgb.device)
        bg = bg.view(n, v, 1, 1, -1) if bg.ndim >= 2 else bg
        rgb = rgb + (1.0 - opacity) * bg
        depth = distance * cosine.view(n, v, h, w, 1)
        return {
            "rgb": rgb.permute(0, 1, 4, 2, 3),
            "opacity": opacity.permute(0, 1, 4, 2, 3),
            "depth": depth.permute(0, 1, 4, 2, 3),
        }

    @staticmethod
    def _patch_anchors(
        patch: Patch | None, n: int, v: int, height: int, width: int, device: torch.device
    ) -> tuple[torch.Tensor | None, tuple[int, int]]:
        if patch is None:
            return None, (height, width)
        if isinstance(patch[0], torch.Tensor):
            anchors, h, w = patch
            if anchors.shape != (n, v, 2):
                raise ValueError(f"patch anchors must be [N, V, 2] = [{n}, {v}, 2], got {tuple(anchors.shape)}")
            return anchors.to(device), (int(h), int(w))
        y0, x0, h, w = (int(p) for p in patch)
        if h < 1 or w < 1 or y0 < 0 or x0 < 0 or y0 + h > height or x0 + w > width:
            raise ValueError(f"patch (y0, x0, h, w) = {patch} is not inside the {height}x{width} image")
        return torch.tensor([y0, x0], device=device).expand(n, v, 2), (h, w)

    def forward(
        self, image: torch.Tensor, source_camera_features: torch.Tensor, render_cameras: torch.Tensor | None,
        height: int, width: int, patch: Patch | None = None, bg_color: float | torch.Tensor = 1.0,
        points: torch.Tensor | None = None, layers_only: bool = False,
    ) -> dict[str, torch.Tensor]:
        """``forward_planes`` then ``render``; render_cameras: [N, V, 25] (``render_camera_features``).

        Returns ``planes`` plus ``render``'s ``rgb``, ``opacity`` and ``depth``; with ``points`` [N, M, 3]
        (model frame) also ``points_raw_density`` [N, M], the field's density before its activation there; with
        an image lift also ``source_front_depth`` and ``source_back_depth`` [N, 1, S/2, S/2], its predicted first
        and last surface depth of the source view. ``layers_only`` (a lift's warm-up, ``train.lift_warmup_steps``)
        returns only those two, from the lift's 2D encoder alone (render_cameras, height and width unused).
        """
        if layers_only:
            if self.lift is None:
                raise ValueError("layers_only needs a model with an image lift")
            layers = self.lift.source_layers(image, source_camera_features)
            return {"source_front_depth": layers[:, :1], "source_back_depth": layers[:, 1:]}
        planes, layers = self._planes(image, source_camera_features)
        c2w, intrinsics = split_render_cameras(render_cameras)
        out = {"planes": planes, **self.render(planes, c2w, intrinsics, height, width, patch, bg_color)}
        if layers is not None:
            out["source_front_depth"], out["source_back_depth"] = layers[:, :1], layers[:, 1:]
        if points is not None:
            out["points_raw_density"] = self.synthesizer.field(planes, points)[1].float()
        return out
