"""Camera conventions, in one module.

* **camera-to-world (c2w)**: 4x4, Blender/OpenGL axes: camera x right, y up, looking down -z.
* **intrinsics**: pixels, ``(fx, fy, cx, cy, width, height)``; pixel (u, v) has its origin at the
  image's top-left corner, v down, pixel centres at +0.5.
* **OpenCV**: x right, y down, looking down +z: ``c2w_cv = c2w_gl @ diag(1, -1, -1, 1)``.
* **OpenLRM**: poses are canonicalised so the source camera sits at (0, -d, 0) looking at the
  origin with z up; features are the flattened 3x4 c2w plus (fx/W, fy/H, cx/W, cy/H) (16 numbers,
  "principle" cameras) or the 4x4 plus the normalised 3x3 K (25 numbers, "standard" cameras).
"""

from __future__ import annotations

import math

import numpy as np

GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def look_at_c2w(eye: np.ndarray, target: np.ndarray | None = None, up: np.ndarray | None = None) -> np.ndarray:
    """The OpenGL-convention c2w of a camera at ``eye`` looking at ``target`` (default origin), z up."""
    eye = np.asarray(eye, dtype=np.float64)
    target = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-8:  # looking straight up/down: pick any perpendicular right
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, -forward, eye
    return c2w


def orbit_position(distance: float, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """A point on a sphere around the origin; azimuth 0, elevation 0 is (0, -distance, 0) (frontal)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return distance * np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> np.ndarray:
    """``[fx, fy, cx, cy, width, height]`` for a horizontal field of view (square pixels)."""
    fx = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return np.array([fx, fx, width / 2, height / 2, width, height], dtype=np.float64)


def opengl_to_opencv(c2w: np.ndarray) -> np.ndarray:
    """OpenGL/Blender c2w -> OpenCV c2w (works on stacks ``[..., 4, 4]``)."""
    return np.asarray(c2w) @ GL_TO_CV


def pixel_rays(c2w: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-space ray origins and unit directions for every pixel centre, shape (H, W, 3)."""
    fx, fy, cx, cy, w, h = intrinsics
    u, v = np.meshgrid(np.arange(int(w)) + 0.5, np.arange(int(h)) + 0.5)
    dirs_cam = np.stack([(u - cx) / fx, -(v - cy) / fy, -np.ones_like(u)], axis=-1)  # OpenGL camera
    dirs = dirs_cam @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origins = np.broadcast_to(c2w[:3, 3], dirs.shape).copy()
    return origins, dirs


def backproject_depth(depth: np.ndarray, c2w: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """World points from a **planar** depth map (distance along the camera's -z), shape (H, W, 3)."""
    fx, fy, cx, cy, w, h = intrinsics
    u, v = np.meshgrid(np.arange(int(w)) + 0.5, np.arange(int(h)) + 0.5)
    pts_cam = np.stack([(u - cx) / fx * depth, -(v - cy) / fy * depth, -depth], axis=-1)
    return pts_cam @ c2w[:3, :3].T + c2w[:3, 3]


FRAMES = ("camera", "upright")
"""Model frames: ``camera`` (OpenLRM's: the source camera at (0, -d, 0), whatever its elevation) or
``upright`` (only turned about the vertical: the source camera keeps its elevation, the object stays z-up)."""


def _source_rigid(source: np.ndarray, frame: str) -> np.ndarray:
    """The rigid map of the world that puts the source camera where ``frame`` wants it (4x4)."""
    if frame == "camera":
        d_src = float(np.linalg.norm(source[:3, 3]))
        canonical = np.array([[1.0, 0, 0, 0], [0, 0, -1, -d_src], [0, 1, 0, 0], [0, 0, 0, 1]])
        return canonical @ np.linalg.inv(source)
    if frame == "upright":  # a turn about z bringing the camera's ground-plane direction to -y
        x, y = float(source[0, 3]), float(source[1, 3])
        azimuth = math.atan2(x, -y) if abs(x) + abs(y) > 1e-12 else 0.0
        c, s = math.cos(azimuth), math.sin(azimuth)
        turn = np.eye(4)
        turn[:2, :2] = [[c, s], [-s, c]]  # by -azimuth
        return turn
    raise ValueError(f"unknown model frame {frame!r}: expected one of {', '.join(FRAMES)}")


def canonicalize_poses(
    c2ws: np.ndarray, source_index: int = 0, distance: float | None = None, frame: str = "camera",
) -> np.ndarray:
    """Re-express c2w poses in the model frame of the source view (``frame``, see ``FRAMES``).

    ``camera``: the source camera at (0, -d, 0) looking at the origin, z up (OpenLRM's). ``upright``:
    the world turned about z only, so the source camera sits at azimuth 0 and keeps its elevation (the
    object's up stays +z; the elevation reaches the model through the camera features). ``d`` is the
    source camera's distance to the origin unless ``distance`` is given (then the whole scene is scaled
    so that the source sits at that distance, as OpenLRM's normalisation does).
    """
    c2ws = np.asarray(c2ws, dtype=np.float64)
    src = c2ws[source_index]
    d_src = float(np.linalg.norm(src[:3, 3]))
    out = _source_rigid(src, frame) @ c2ws
    if distance is not None:
        out[:, :3, 3] *= float(distance) / d_src
    return out


def object_to_model_frame(
    c2w: np.ndarray, source_index: int = 0, distance: float | None = None, frame: str = "camera",
) -> np.ndarray:
    """The similarity that ``canonicalize_poses`` applies to the world: object-frame point -> model-frame point."""
    c2w = np.asarray(c2w, dtype=np.float64)
    source = c2w[source_index]
    scale = 1.0 if distance is None else float(distance) / float(np.linalg.norm(source[:3, 3]))
    return np.diag([scale, scale, scale, 1.0]) @ _source_rigid(source, frame)


def camera_features(c2w: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """OpenLRM's 16-number source-camera features: 3x4 c2w flattened + fx/W, fy/H, cx/W, cy/H."""
    c2w = np.asarray(c2w, dtype=np.float64)
    fx, fy, cx, cy, w, h = np.asarray(intrinsics, dtype=np.float64)[..., :6].T
    norm = np.stack([fx / w, fy / h, cx / w, cy / h], axis=-1)
    return np.concatenate([c2w[..., :3, :4].reshape(*c2w.shape[:-2], 12), norm], axis=-1)


def render_camera_features(c2w: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """OpenLRM's 25-number render-camera features: 4x4 c2w flattened + normalised 3x3 K flattened."""
    c2w = np.asarray(c2w, dtype=np.float64)
    fx, fy, cx, cy, w, h = np.asarray(intrinsics, dtype=np.float64)[..., :6].T
    z, o = np.zeros_like(fx), np.ones_like(fx)
    k = np.stack([fx / w, z, cx / w, z, fy / h, cy / h, z, z, o], axis=-1)
    return np.concatenate([c2w.reshape(*c2w.shape[:-2], 16), k], axis=-1)


def normalized_intrinsics(intrinsics: np.ndarray) -> np.ndarray:
    """``[..., 4]`` = (fx/W, fy/H, cx/W, cy/H): the resolution-free intrinsics the LRM renderer takes."""
    k = np.asarray(intrinsics, dtype=np.float64)
    return k[..., :4] / np.concatenate([k[..., 4:6], k[..., 4:6]], axis=-1)
