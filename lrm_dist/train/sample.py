"""OpenLRM's training-sample recipe, from the decoded views of one asset.

One source view, composited on white and resized to the encoder's input, plus supervision views
(the source view first) composited on a random grey background, resized to a random side R in
[render_res_low, render_res_high] and cropped to a random ``patch_size`` square at a ray anchor.
Cameras are canonicalised to the source view (``geometry.cameras.canonicalize_poses``); each crop's
intrinsics are rewritten so the crop is a whole image of its own (principal point shifted by the
anchor, focal scaled by R/W): rendering a patch at an anchor of an R x R image and rendering that
crop camera give the same rays, so samples of different R batch together.

Geometry supervision rides along when the shard has it: each view's planar depth cropped like its
image (``render_depth`` with ``render_depth_mask``), and labelled points of the ground-truth occupancy
grid moved into the canonicalised frame (``occupancy_points``, ``occupancy_labels``,
``occupancy_mask``). Without them the arrays are zeros with a zero mask, so the term is off for
that sample and batches still collate.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lrm_dist.geometry.cameras import camera_features, canonicalize_poses, object_to_model_frame
from lrm_dist.geometry.occupancy import lookup, surface_layers, surface_points
from lrm_dist.model.renderer import ray_box
from lrm_dist.model_input import composite, resize
from lrm_dist.train.config import SampleConfig
from lrm_dist.train.losses import depth_normals


def resize_depth(depth: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Planar depth [K, 1, H, W] (0 = background) -> (depth, mask) at side x side.

    Depth is averaged over valid pixels only (no blending with the background's 0); a pixel is valid
    where at least 99% of its footprint was foreground.
    """
    valid = (depth > 0).float()
    if depth.shape[-2:] == (side, side):
        return depth * valid, valid
    kw = {"size": (side, side), "mode": "bilinear", "align_corners": False, "antialias": True}
    weight = F.interpolate(valid, **kw)
    total = F.interpolate(depth * valid, **kw)
    mask = (weight > 0.99).float()
    return torch.where(mask > 0, total / weight.clamp_min(1e-6), torch.zeros_like(total)), mask


def source_ray_points(alpha: np.ndarray, c2w: np.ndarray, intrinsics: np.ndarray, n: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``n`` points (object frame, [n, 3]) on rays of the source view through its silhouette, at uniform depths
    between where each ray enters and leaves the [-1, 1]^3 box (``model.renderer.ray_box``; a ray that misses it
    gives the camera's position, outside the box): the space in front of, inside and behind the object that the
    input view sees, where a single-view model's errors lie (docs/train.md, round 14).

    alpha: [H, W] (the silhouette is alpha > 127); c2w: 4x4 OpenGL camera-to-object; intrinsics: fx, fy, cx, cy of
    that image's pixels. Returns [0, 3] when the silhouette is empty.
    """
    rows, cols = np.nonzero(np.asarray(alpha) > 127) if n else (np.zeros(0, np.int64),) * 2
    if rows.size == 0:
        return np.zeros((0, 3))
    pick = rng.integers(0, rows.size, n)
    u, v = cols[pick] + rng.random(n), rows[pick] + rng.random(n)
    fx, fy, cx, cy = np.asarray(intrinsics, dtype=np.float64)[:4]
    dirs = np.stack([(u - cx) / fx, -(v - cy) / fy, -np.ones(n)], axis=-1) @ c2w[:3, :3].T
    origins = np.repeat(c2w[None, :3, 3], n, axis=0)
    enter, leave = (t.numpy() for t in ray_box(torch.from_numpy(origins), torch.from_numpy(dirs)))  # misses: 0, 0
    return origins + dirs * (enter + rng.random(n) * (leave - enter))[:, None]


def occupancy_sample(
    grid: np.ndarray | None, to_model: np.ndarray, n: int, rng: np.random.Generator, n_surface: int,
    n_ray: int = 0, source_rays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """``n`` labelled points in the model frame (``to_model``: 4x4 object -> model): first ``n_surface`` of them
    at the ground truth's surface, then ``n_ray`` on the source view's rays (``source_ray_points`` of
    ``source_rays`` = (alpha, c2w, intrinsics) of that view), then the rest uniform over the model's [-1, 1]^3 box
    (every part of the box the field is rendered and meshed in gets labels, also corners the object frame's grid
    misses). Ray and uniform points are labelled by the grid cell they fall in.

    Without a grid all points get mask 0; surface points that the canonicalisation moves out of the
    box get mask 0 too (and so do ray points, when the source view's silhouette is empty).
    """
    if grid is None or n == 0:
        return {"occupancy_points": np.zeros((n, 3), np.float32), "occupancy_labels": np.zeros(n, np.float32),
                "occupancy_mask": np.zeros(n, np.float32)}
    near, near_inside = surface_points(grid, n_surface, rng)
    near_model = near.astype(np.float64) @ to_model[:3, :3].T + to_model[:3, 3]
    on_rays = source_ray_points(*source_rays, n_ray, rng) if source_rays is not None else np.zeros((0, 3))
    rays_model = on_rays @ to_model[:3, :3].T + to_model[:3, 3]
    rays_model = np.concatenate([rays_model, np.full((n_ray - len(on_rays), 3), 2.0)])  # none: outside, masked
    uniform = rng.uniform(-1.0, 1.0, size=(n - len(near) - n_ray, 3))
    from_model = np.linalg.inv(to_model)
    labelled = np.concatenate([rays_model, uniform])
    labels = lookup(grid, labelled @ from_model[:3, :3].T + from_model[:3, 3])
    points = np.concatenate([near_model, labelled])
    mask = np.all(np.abs(points) <= 1.0, axis=-1)
    return {"occupancy_points": points.astype(np.float32),
            "occupancy_labels": np.concatenate([near_inside, labels]).astype(np.float32),
            "occupancy_mask": mask.astype(np.float32)}


def source_layers(
    grid: np.ndarray | None, c2w: np.ndarray, intrinsics: np.ndarray, side: int, scale: float
) -> dict[str, np.ndarray]:
    """The source view's first and last ground-truth surface depth per pixel ([1, side, side] each, model
    units) and where a ray meets the object (``source_layers_mask``); all zero without a grid."""
    if grid is None:
        zeros = np.zeros((1, side, side), np.float32)
        return {"source_first_depth": zeros, "source_last_depth": zeros, "source_layers_mask": zeros}
    first, last, hit = surface_layers(grid, c2w, intrinsics, side)
    return {"source_first_depth": (first * scale)[None].astype(np.float32),
            "source_last_depth": (last * scale)[None].astype(np.float32),
            "source_layers_mask": hit[None].astype(np.float32)}


def crop_intrinsics(intrinsics: np.ndarray, res: int, anchors: np.ndarray, patch: int) -> np.ndarray:
    """Pixel intrinsics [K, 6] of each view resized to res x res and cropped at anchors (row, col) to patch x patch."""
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    sx, sy = res / intrinsics[:, 4], res / intrinsics[:, 5]
    out = np.empty_like(intrinsics)
    out[:, 0], out[:, 1] = intrinsics[:, 0] * sx, intrinsics[:, 1] * sy
    out[:, 2] = intrinsics[:, 2] * sx - anchors[:, 1]
    out[:, 3] = intrinsics[:, 3] * sy - anchors[:, 0]
    out[:, 4] = out[:, 5] = patch
    return out


def normalized_intrinsics(intrinsics: torch.Tensor) -> torch.Tensor:
    """Pixel intrinsics [..., 6] -> the model's normalised [..., 4] (fx/W, fy/H, cx/W, cy/H)."""
    w, h = intrinsics[..., 4:5], intrinsics[..., 5:6]
    return torch.cat([intrinsics[..., 0:1] / w, intrinsics[..., 1:2] / h, intrinsics[..., 2:3] / w, intrinsics[..., 3:4] / h], -1)


def choose_views(n_views: int, k: int, rng: np.random.Generator, frontal_fraction: float = 0.0) -> np.ndarray:
    """``k`` distinct random view indices out of ``n_views`` (the first becomes the source view).

    ``frontal_fraction``: the chance that the source view is view 0, the renderer's frontal view (the others then
    drawn from the rest); at 0 no extra random number is drawn, so the stream is the same as without it.
    """
    if n_views < k:
        raise ValueError(f"asset has {n_views} views, the recipe needs {k} (train.sample.supervision_views)")
    if frontal_fraction > 0 and rng.random() < frontal_fraction:
        return np.concatenate([[0], 1 + rng.choice(n_views - 1, size=k - 1, replace=False)]).astype(np.int64)
    return rng.choice(n_views, size=k, replace=False)


def camera_normals(normal: np.ndarray, c2w: np.ndarray) -> torch.Tensor:
    """World (object-frame) normals [K, H, W, 3] -> each view's camera-frame normals [K, 3, H, W].

    Camera-frame directions do not change when the scene and its cameras are canonicalised together
    (a rotation and a uniform scale), so they compare directly with normals of the rendered depth.
    """
    rot = torch.from_numpy(np.asarray(c2w, np.float32)[:, :3, :3])
    world = torch.from_numpy(np.asarray(normal, np.float32))
    return torch.einsum("khwi,kij->kjhw", world, rot)  # n_cam = R^T n_world, as row vectors n @ R


def resize_normals(normal: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit normals [K, 3, H, W] (0 = background) -> (unit normals, mask [K, 1, side, side]), averaged over
    foreground pixels only; valid where at least 99% of a pixel's footprint was foreground."""
    valid = (normal.abs().sum(1, keepdim=True) > 0).float()
    if normal.shape[-2:] != (side, side):
        kw = {"size": (side, side), "mode": "bilinear", "align_corners": False, "antialias": True}
        weight = F.interpolate(valid, **kw)
        normal, valid = F.interpolate(normal * valid, **kw), (weight > 0.99).float()
    return F.normalize(normal, dim=1) * valid, valid


def depth_map_normals(depth: np.ndarray, mask: np.ndarray, intrinsics: np.ndarray, min_facing: float = 0.3,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame normals [K, 3, P, P] and their mask [K, 1, P, P] of ground-truth planar depth crops [K, 1, P, P]
    (valid where ``mask``) seen through crop intrinsics [K, 6]: the normal-map target of a shard without normal maps.

    A pixel counts where it and its right and lower neighbours hold depth and the surface they span faces the camera
    more than ``min_facing`` (cosine with the ray): a depth step between two parts spans a grazing facet, not a surface.
    """
    d = torch.from_numpy(np.asarray(depth, np.float32))[None]
    k = torch.from_numpy(np.asarray(intrinsics, np.float32))[None]
    normal = depth_normals(d, k)[0]  # [K, 3, P-1, P-1]
    _, _, _, h, w = d.shape
    fx, fy, cx, cy = (k[0, :, i].view(-1, 1, 1) for i in range(4))
    rows = torch.arange(h - 1, dtype=torch.float32).view(1, -1, 1) + 0.5
    cols = torch.arange(w - 1, dtype=torch.float32).view(1, 1, -1) + 0.5
    x, y = torch.broadcast_tensors((cols - cx) / fx, -(rows - cy) / fy)  # [K, P-1, P-1] each
    ray = F.normalize(torch.stack([x, y, -torch.ones_like(x)], 1), dim=1)
    valid = torch.from_numpy(np.asarray(mask, np.float32)) > 0
    covered = valid[..., :-1, :-1] & valid[..., :-1, 1:] & valid[..., 1:, :-1]
    keep = covered & (-(normal * ray).sum(1, keepdim=True) > min_facing)
    out = torch.zeros(d.shape[1], 3, h, w)
    out_mask = torch.zeros(d.shape[1], 1, h, w)
    out[..., :-1, :-1] = normal * keep
    out_mask[..., :-1, :-1] = keep.float()
    return out.numpy(), out_mask.numpy()


def build_sample(
    rgba: np.ndarray, c2w: np.ndarray, intrinsics: np.ndarray, cfg: SampleConfig, source_size: int,
    rng: np.random.Generator, depth: np.ndarray | None = None, occupancy: np.ndarray | None = None,
    normal: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One training sample from K chosen views (view 0 is the source).

    rgba: uint8 [K, H, W, 4] straight alpha; c2w: [K, 4, 4] OpenGL, canonical object frame;
    intrinsics: [K, 6] pixels of the rgba image. Returns float32 arrays: ``source_image`` [3, S, S],
    ``source_camera`` [16], ``source_extent`` [] (the object's share of the source frame), ``render_c2w`` [K, 4, 4], ``render_intrinsics`` [K, 6] (pixels of the crop),
    ``render_image`` [K, 3, P, P], ``render_alpha`` [K, 1, P, P], ``render_bg`` [K], ``render_depth`` and
    ``render_depth_mask`` [K, 1, P, P], ``source_depth`` and ``source_depth_mask`` [1, S/2, S/2] (the source
    view's depth at half the encoder's side), ``occupancy_points`` [M, 3], ``occupancy_labels`` and
    ``occupancy_mask`` [M] (M = ``cfg.occupancy_points``); int64 ``render_anchors`` [K, 2] (row, col) and
    ``render_res`` [K]. depth: float32 [K, h, w] planar depth of the views (0 = background) or None;
    occupancy: the asset's bool occupancy grid (object frame) or None; normal: float32 [K, h, w, 3] world
    normals of the views (0 = background) or None, cropped as ``render_normal`` [K, 3, P, P] in each
    view's camera frame with ``render_normal_mask`` [K, 1, P, P].
    """
    rgba = np.asarray(rgba)
    if rgba.ndim != 4 or rgba.shape[-1] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"rgba must be uint8 [K, H, W, 4], got {rgba.dtype} {rgba.shape}")
    k, p = rgba.shape[0], cfg.patch_size
    if c2w.shape != (k, 4, 4) or intrinsics.shape != (k, 6):
        raise ValueError(f"cameras must be [{k}, 4, 4] and [{k}, 6], got {c2w.shape} and {intrinsics.shape}")
    views = torch.from_numpy(rgba).permute(0, 3, 1, 2).float().div_(255.0)  # [K, 4, H, W]

    source = build_layers_sample(rgba[0], c2w[0], intrinsics[0], cfg, source_size,
                                 occupancy if cfg.source_layers else None)
    poses = canonicalize_poses(c2w, source_index=0, distance=cfg.source_distance, frame=cfg.frame)

    bg = rng.choice(np.asarray(cfg.backgrounds, dtype=np.float64), size=k)
    res = int(rng.integers(cfg.render_res_low, cfg.render_res_high + 1))
    target = resize(composite(views, torch.from_numpy(bg).float().view(k, 1, 1, 1)), res)
    alpha = resize(views[:, 3:4], res)
    anchors = rng.integers(0, res - p + 1, size=(k, 2))
    rows = torch.from_numpy(anchors[:, 0]).view(k, 1, 1) + torch.arange(p).view(1, p, 1)
    cols = torch.from_numpy(anchors[:, 1]).view(k, 1, 1) + torch.arange(p).view(1, 1, p)
    batch = torch.arange(k).view(k, 1, 1)

    def crop(images: torch.Tensor) -> torch.Tensor:
        return images.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous().numpy().astype(np.float32)

    to_model = object_to_model_frame(c2w, 0, cfg.source_distance, cfg.frame)
    half = source_size // 2
    scale = float(np.cbrt(abs(np.linalg.det(to_model[:3, :3]))))  # canonicalisation may rescale the scene
    if depth is not None:
        depth_t = torch.from_numpy(np.asarray(depth, np.float32)).unsqueeze(1) * scale
        depth_res, depth_mask = resize_depth(depth_t, res)
        depth_crop, depth_mask_crop = crop(depth_res), crop(depth_mask)
        source_depth, source_mask = (t[0].numpy().astype(np.float32) for t in resize_depth(depth_t[:1], half))
    else:
        depth_crop = depth_mask_crop = np.zeros((k, 1, p, p), np.float32)
        source_depth = source_mask = np.zeros((1, half, half), np.float32)
    if normal is not None:
        normal_res, normal_mask = resize_normals(camera_normals(normal, c2w), res)
        normal_crop, normal_mask_crop = crop(normal_res), crop(normal_mask)
    elif cfg.normal and depth is not None:  # no normal maps in the shard: the normals of the depth maps
        normal_crop, normal_mask_crop = depth_map_normals(depth_crop, depth_mask_crop,
                                                          crop_intrinsics(intrinsics, res, anchors, p))
    else:
        normal_crop, normal_mask_crop = np.zeros((k, 3, p, p), np.float32), np.zeros((k, 1, p, p), np.float32)
    return {
        **source,
        "render_c2w": poses.astype(np.float32),
        "render_intrinsics": crop_intrinsics(intrinsics, res, anchors, p).astype(np.float32),
        "render_image": crop(target),
        "render_alpha": crop(alpha),
        "render_bg": bg.astype(np.float32),
        "render_depth": depth_crop,
        "render_depth_mask": depth_mask_crop,
        "render_normal": normal_crop,
        "render_normal_mask": normal_mask_crop,
        "source_depth": source_depth,
        "source_depth_mask": source_mask,
        **occupancy_sample(occupancy, to_model, cfg.occupancy_points, rng, cfg.surface_point_count(),
                           cfg.ray_point_count(), (rgba[0, ..., 3], c2w[0], intrinsics[0])),
        "render_anchors": anchors.astype(np.int64),
        "render_res": np.full(k, res, dtype=np.int64),
    }


def build_layers_sample(
    rgba: np.ndarray, c2w: np.ndarray, intrinsics: np.ndarray, cfg: SampleConfig, source_size: int,
    occupancy: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The source view's part of a sample, and the whole of a lift warm-up's (``train.lift_warmup_steps``).

    rgba uint8 [H, W, 4], c2w [4, 4] and intrinsics [6] of the source view -> ``source_image``, ``source_camera``,
    ``source_extent`` and the depth layers (``source_layers``; zeros without a grid). ``build_sample`` adds the
    supervision views, depth crops and occupancy points, which a warm-up step does not read (half the loader's work).
    """
    rgba = np.array(rgba)  # a copy: a decoded image may be read-only
    if rgba.ndim != 3 or rgba.shape[-1] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"rgba must be uint8 [H, W, 4], got {rgba.dtype} {rgba.shape}")
    view = torch.from_numpy(rgba).permute(2, 0, 1)[None].float().div_(255.0)
    c2w = np.asarray(c2w)[None]
    intrinsics = np.asarray(intrinsics)[None]
    poses = canonicalize_poses(c2w, source_index=0, distance=cfg.source_distance, frame=cfg.frame)
    to_model = object_to_model_frame(c2w, 0, cfg.source_distance, cfg.frame)
    scale = float(np.cbrt(abs(np.linalg.det(to_model[:3, :3]))))
    return {
        "source_image": resize(composite(view, 1.0), source_size)[0].numpy().astype(np.float32),
        "source_camera": camera_features(poses[0], intrinsics[0]).astype(np.float32),
        "source_extent": np.array(foreground_extent(rgba), np.float32),
        **source_layers(occupancy, c2w[0], intrinsics[0], source_size // 2, scale),
    }


def foreground_extent(rgba: np.ndarray, cutoff: int = 8) -> float:
    """The object's share of the frame: the longer side of its alpha bounding box / the image side (0: empty)."""
    rows, cols = np.nonzero(rgba[..., 3] > cutoff)
    if rows.size == 0:
        return 0.0
    return max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) / max(rgba.shape[0], rgba.shape[1])


def collate(samples: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack samples into a batch of tensors (keys with non-array values are dropped)."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    return {
        key: torch.from_numpy(np.stack([s[key] for s in samples]))
        for key, value in samples[0].items()
        if isinstance(value, np.ndarray)
    }
