"""Seeded cameras and lighting, the settings hash and input checks: pure Python, no Blender."""

import math

import numpy as np
import pytest

from lrm_dist.geometry.cameras import look_at_c2w, orbit_position
from lrm_dist.render.cameras import sample_cameras, sample_orbits
from lrm_dist.render.config import CameraConfig, LightingConfig, RenderConfig
from lrm_dist.render.lighting import aim_rotation, sample_lighting
from lrm_dist.render.settings import settings_hash
from lrm_dist.upscale.config import UpscaleConfig


def test_view0_is_frontal_and_cameras_are_exact():
    cfg = CameraConfig(distance=(2.0, 3.0), fov_deg=(40.0, 50.0))
    c2w, intr = sample_cameras(cfg, "a", views=8, resolution=128)
    assert c2w.shape == (8, 4, 4) and intr.shape == (8, 6)
    np.testing.assert_allclose(c2w[0, :3, 3], [0.0, -2.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(c2w[0, :3, 2], [0.0, -1.0, 0.0], atol=1e-12)  # camera +z points back at -y
    fx = 64 / math.tan(math.radians(45.0) / 2)
    np.testing.assert_allclose(intr[0], [fx, fx, 64, 64, 128, 128])
    for m in c2w:  # every camera looks at the origin with an orthonormal frame
        np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-9)
        np.testing.assert_allclose(np.cross(m[:3, 3], -m[:3, 2]), 0.0, atol=1e-9)


def test_orbits_respect_ranges_and_seed():
    cfg = CameraConfig(elevation_deg=(-10.0, 30.0), azimuth_deg=(90.0, 270.0), distance=(2.2, 2.6), fov_deg=(30, 35))
    o = sample_orbits(cfg, "chair-1", 33)
    rest = o[1:]
    assert (rest[:, 1] >= -10 - 1e-9).all() and (rest[:, 1] <= 30 + 1e-9).all()
    assert (rest[:, 0] >= 90).all() and (rest[:, 0] <= 270).all()
    assert (rest[:, 2] >= 2.2).all() and (rest[:, 2] <= 2.6).all() and (rest[:, 3] >= 30).all()
    # stratified: one azimuth in each of the 32 slots
    slots = np.floor((rest[:, 0] - 90) / (180 / 32)).astype(int)
    assert sorted(slots.tolist()) == list(range(32))
    np.testing.assert_array_equal(o, sample_orbits(cfg, "chair-1", 33))
    assert not np.allclose(o[1:], sample_orbits(cfg, "chair-2", 33)[1:])
    assert not np.allclose(o[1:], sample_orbits(cfg.model_copy(update={"seed": 1}), "chair-1", 33)[1:])


def test_camera_config_rejects_bad_ranges():
    with pytest.raises(ValueError, match="elevation_deg"):
        CameraConfig(elevation_deg=(40.0, 10.0))
    with pytest.raises(ValueError, match="within"):
        CameraConfig(fov_deg=(0.5, 10.0))


def test_lighting_is_seeded_and_varied():
    cfg = LightingConfig()
    hdris = ["/x/a.exr", "/x/b.exr"]
    specs = [sample_lighting(cfg, f"asset-{i}", hdris) for i in range(60)]
    assert sample_lighting(cfg, "asset-3", hdris) == specs[3]
    presets = {s["preset"] for s in specs}
    assert presets == {"area_rig", "sun", "hdri"}
    for s in specs:
        for light in s["lights"]:
            assert cfg.temperature_k[0] <= light["temperature"] <= cfg.temperature_k[1]
        if s["preset"] == "area_rig":
            assert cfg.area_lights[0] <= len(s["lights"]) <= cfg.area_lights[1]
            assert all(cfg.area_energy_w[0] <= l["energy"] <= cfg.area_energy_w[1] for l in s["lights"])
        if s["preset"] == "hdri":
            assert s["hdri"]["path"] in hdris and not s["lights"]
    # without HDRIs the hdri preset falls back to a lamp rig
    only_hdri = LightingConfig(presets={"hdri": 1.0})
    assert sample_lighting(only_hdri, "a", [])["preset"] == "area_rig"


@pytest.mark.parametrize("loc", [[3.0, -2.0, 4.0], [-1.0, 5.0, 0.5], [0.2, 0.1, -3.0]])
def test_aim_rotation_points_light_at_origin(loc):
    rx, _, rz = aim_rotation(loc)
    Rx = np.array([[1, 0, 0], [0, math.cos(rx), -math.sin(rx)], [0, math.sin(rx), math.cos(rx)]])
    Rz = np.array([[math.cos(rz), -math.sin(rz), 0], [math.sin(rz), math.cos(rz), 0], [0, 0, 1]])
    shine = Rz @ Rx @ np.array([0.0, 0.0, -1.0])  # Euler XYZ: R = Rz Ry Rx; lights shine down local -z
    np.testing.assert_allclose(shine, -np.asarray(loc) / np.linalg.norm(loc), atol=1e-12)


def test_settings_hash_tracks_content_only():
    base = RenderConfig()
    h = settings_hash(base)
    assert h == settings_hash(RenderConfig()) and len(h) == 16
    for change in ({"views": 8}, {"samples": 64}, {"resolution": 512}, {"cameras": {"seed": 3}},
                   {"lighting": {"seed": 1}}, {"engine": "BLENDER_EEVEE"}):
        assert settings_hash(RenderConfig.model_validate(change)) != h, change
    for change in ({"actors": {"count": 7, "recycle_after": 3}}, {"timeout_s": 5}, {"retries": 0}, {"cycles_device": "CPU"}):
        assert settings_hash(RenderConfig.model_validate(change)) == h, change
    assert settings_hash(base, UpscaleConfig(enabled=False)) == h
    up = settings_hash(base, UpscaleConfig(enabled=True))
    assert up != h and up != settings_hash(base, UpscaleConfig(enabled=True, outscale=2.0))


def test_orbit_position_frontal_convention():
    np.testing.assert_allclose(look_at_c2w(orbit_position(2.0, 0.0, 0.0))[:3, 3], [0, -2, 0], atol=1e-12)


def test_settings_hash_tracks_the_lighting_code_constants(monkeypatch):
    from lrm_dist.render import lighting, settings

    h = settings_hash(RenderConfig())
    monkeypatch.setitem(lighting.AREA_RIG, "elevation_deg", (89.0, 89.5))
    changed = settings_hash(RenderConfig())
    assert changed != h
    spec = sample_lighting(RenderConfig().lighting.model_copy(update={"presets": {"area_rig": 1.0}}), "a", [])
    for light in spec["lights"]:  # the rig is drawn from the constant: every light nearly overhead
        x, y, z = light["location"]
        assert z / math.sqrt(x * x + y * y + z * z) > 0.999
    monkeypatch.undo()
    monkeypatch.setattr(settings, "RENDER_CODE_VERSION", settings.RENDER_CODE_VERSION + 1)
    assert settings_hash(RenderConfig()) not in (h, changed)
