"""OpenLRM's sample recipe: shapes, compositing, crop cameras, canonicalised poses."""

import numpy as np
import pytest
import torch

from lrm_dist.geometry.cameras import camera_features, intrinsics_from_fov, look_at_c2w, orbit_position
from lrm_dist.model.config import SIZES
from lrm_dist.model.lrm import LRM
from lrm_dist.train.config import SampleConfig
from lrm_dist.train.decode import sample_from_raw
from lrm_dist.train.sample import build_sample, choose_views, collate, crop_intrinsics, normalized_intrinsics
from lrm_dist.train.step import render_cameras


def _views(k: int, res: int = 40):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, size=(k, res, res, 4), dtype=np.uint8)
    rgba[:, :, : res // 2, 3] = 0      # left half transparent
    rgba[:, :, res // 2 :, 3] = 255    # right half opaque
    c2w = np.stack([look_at_c2w(orbit_position(2.5, 40.0 * i + 15, 10.0 * i)) for i in range(k)])
    intr = np.tile(intrinsics_from_fov(45.0, res, res), (k, 1))
    return rgba, c2w, intr


def test_sample_shapes_and_ranges(small_recipe):
    rgba, c2w, intr = _views(3)
    s = build_sample(rgba, c2w, intr, small_recipe, source_size=28, rng=np.random.default_rng(1))
    assert s["source_image"].shape == (3, 28, 28) and s["source_camera"].shape == (16,)
    assert s["render_c2w"].shape == (3, 4, 4) and s["render_intrinsics"].shape == (3, 6)
    assert s["render_image"].shape == (3, 3, 16, 16) and s["render_alpha"].shape == (3, 1, 16, 16)
    assert s["render_bg"].shape == (3,) and set(s["render_bg"]) <= {0.0, 0.5, 1.0}
    res = int(s["render_res"][0])
    assert 24 <= res <= 32 and (s["render_res"] == res).all()
    assert ((s["render_anchors"] >= 0) & (s["render_anchors"] <= res - 16)).all()
    for key in ("source_image", "render_image", "render_alpha"):
        assert s[key].dtype == np.float32 and s[key].min() >= 0 and s[key].max() <= 1
    assert (s["render_intrinsics"][:, 4:] == 16).all()
    batch = collate([s, s])
    assert batch["render_image"].shape == (2, 3, 3, 16, 16) and batch["render_anchors"].dtype == torch.int64


def test_source_is_on_white_and_targets_on_their_background():
    rgba, c2w, intr = _views(2, res=32)
    cfg = SampleConfig(supervision_views=2, render_res_low=32, render_res_high=32, patch_size=32, backgrounds=[0.0])
    s = build_sample(rgba, c2w, intr, cfg, source_size=32, rng=np.random.default_rng(0))
    # no resize at 32 -> exact compositing: transparent half is the background, opaque half the colour
    assert np.allclose(s["source_image"][:, :, :12], 1.0)
    assert np.allclose(s["source_image"][:, :, 20:], rgba[0, :, 20:, :3].transpose(2, 0, 1) / 255, atol=1e-6)
    assert np.allclose(s["render_image"][:, :, :, :12], 0.0)
    assert np.allclose(s["render_alpha"][:, 0, :, 20:], 1.0) and np.allclose(s["render_alpha"][:, 0, :, :12], 0.0)


def test_cameras_are_canonicalised_to_the_source_view(small_recipe):
    rgba, c2w, intr = _views(3)
    s = build_sample(rgba, c2w, intr, small_recipe, source_size=28, rng=np.random.default_rng(2))
    poses = s["render_c2w"].astype(np.float64)
    d = np.linalg.norm(c2w[0, :3, 3])
    assert np.allclose(poses[0], look_at_c2w(np.array([0.0, -d, 0.0])), atol=1e-5)
    # relative poses are unchanged
    for i in (1, 2):
        assert np.allclose(np.linalg.inv(poses[0]) @ poses[i], np.linalg.inv(c2w[0]) @ c2w[i], atol=1e-5)
    assert np.allclose(s["source_camera"], camera_features(poses[0], intr[0]), atol=1e-5)
    scaled = build_sample(rgba, c2w, intr, small_recipe.model_copy(update={"source_distance": 2.0}), 28, np.random.default_rng(2))
    assert np.linalg.norm(scaled["render_c2w"][0, :3, 3]) == pytest.approx(2.0, abs=1e-5)


def test_crop_camera_renders_the_patch_of_the_full_image():
    """A crop's own camera gives the same pixels as the model's anchored patch of the resized image."""
    torch.manual_seed(0)
    model = LRM(SIZES["tiny"]).eval()
    res, patch = 20, 8
    c2w = torch.tensor(look_at_c2w(orbit_position(2.0, 30.0, 20.0)), dtype=torch.float32).view(1, 1, 4, 4)
    intr_full = np.array([intrinsics_from_fov(50.0, 64, 48)])  # a non-square original image
    anchors = np.array([[5, 9]])
    crop = crop_intrinsics(intr_full, res, anchors, patch)
    with torch.no_grad():
        planes = model.forward_planes(torch.rand(1, 3, 56, 56), torch.rand(1, 16))
        full = model.render(planes, c2w, normalized_intrinsics(torch.tensor(intr_full)).float().view(1, 1, 4),
                            res, res, patch=(torch.tensor(anchors).view(1, 1, 2), patch, patch))
        own = model.render(planes, c2w, normalized_intrinsics(torch.tensor(crop)).float().view(1, 1, 4), patch, patch)
    for key in ("rgb", "opacity", "depth"):
        assert torch.allclose(full[key], own[key], atol=1e-5), key
    cams = render_cameras(c2w, torch.tensor(crop).float().view(1, 1, 6))
    assert cams.shape == (1, 1, 25) and torch.allclose(cams[..., :16].view(4, 4), c2w.view(4, 4))


def test_sample_from_raw_reads_only_the_chosen_views(synthetic_shards, small_recipe):
    import webdataset as wds

    raw = next(iter(wds.tarfile_to_samples()(iter([{"url": str(synthetic_shards[0])}]))))
    s = sample_from_raw(raw, small_recipe, 28, np.random.default_rng(0))
    assert s["asset_id"] == raw["__key__"] and len(set(s["views"].tolist())) == 3
    broken = {k: v for k, v in raw.items() if not k.endswith(f"{int(s['views'][1]):03d}.rgba.png")}
    with pytest.raises(ValueError, match="rgba.png"):
        sample_from_raw(broken, small_recipe, 28, np.random.default_rng(0))
    with pytest.raises(ValueError, match="supervision_views"):
        sample_from_raw(raw, small_recipe.model_copy(update={"supervision_views": 7}), 28, np.random.default_rng(0))


def test_frontal_source_fraction_picks_view_0_as_the_source_that_often():
    """At 0 the draw is the plain random choice (the same stream as before the option); at f the source is view 0 with
    chance f + (1 - f) / n_views, the other views distinct and drawn from the rest."""
    plain, same = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(50):
        np.testing.assert_array_equal(choose_views(8, 4, same, 0.0), plain.choice(8, size=4, replace=False))
    always = [choose_views(8, 4, np.random.default_rng(i), 1.0) for i in range(200)]
    assert all(v[0] == 0 and len(set(v.tolist())) == 4 and set(v[1:].tolist()) <= set(range(1, 8)) for v in always)
    assert len({tuple(v[1:]) for v in always}) > 50  # the others still vary
    rng = np.random.default_rng(0)
    share = np.mean([choose_views(8, 4, rng, 0.5)[0] == 0 for _ in range(4000)])
    assert abs(share - (0.5 + 0.5 / 8)) < 0.025  # binomial sd 0.008
    with pytest.raises(ValueError, match="frontal_source_fraction"):
        SampleConfig(frontal_source_fraction=1.5)


def test_sample_from_raw_takes_the_frontal_source_when_told(synthetic_shards, small_recipe):
    import webdataset as wds

    raw = next(iter(wds.tarfile_to_samples()(iter([{"url": str(synthetic_shards[0])}]))))
    recipe = small_recipe.model_copy(update={"frontal_source_fraction": 1.0})
    for seed in range(5):
        assert sample_from_raw(raw, recipe, 28, np.random.default_rng(seed))["views"][0] == 0
        assert sample_from_raw(raw, recipe, 28, np.random.default_rng(seed), layers_only=True)["views"][0] == 0


@pytest.mark.parametrize("distance,frame", [(None, "camera"), (2.0, "camera"), (2.0, "upright")])
def test_occupancy_points_in_the_model_frame_match_the_mesh(small_recipe, distance, frame):
    import trimesh

    from lrm_dist.geometry.cameras import object_to_model_frame
    from lrm_dist.geometry.inside import contains
    from lrm_dist.geometry.occupancy import occupancy_grid

    mesh = trimesh.creation.box(extents=(1.6, 0.5, 0.9))
    mesh.apply_translation((0.1, 0.2, -0.1))
    grid = occupancy_grid(mesh.vertices, mesh.faces, 48)
    rgba, c2w, intr = _views(3)
    c2w = c2w[[2, 0, 1]]  # a source view 20 degrees up: the two frames differ
    cfg = small_recipe.model_copy(update={"occupancy_points": 3000, "source_distance": distance,
                                          "occupancy_surface_fraction": 0.5, "frame": frame, "source_layers": True})
    s = build_sample(rgba, c2w, intr, cfg, 28, np.random.default_rng(2), occupancy=grid)
    points, labels, mask = s["occupancy_points"], s["occupancy_labels"], s["occupancy_mask"]
    assert points.shape == (3000, 3) and mask.mean() > 0.9
    assert np.abs(points[mask > 0]).max() <= 1.0
    to_object = np.linalg.inv(object_to_model_frame(c2w, 0, distance, frame))
    in_object = points.astype(np.float64) @ to_object[:3, :3].T + to_object[:3, 3]
    truth = contains(mesh.vertices, mesh.faces, in_object)
    agree = (truth == (labels > 0.5))[mask > 0].mean()
    assert agree > 0.98  # only uniform points within one cell of the surface may differ
    assert 0.2 < labels[mask > 0].mean() < 0.6
    # the surface points come first (training calibrates its iso-level on the uniform ones after them)
    from lrm_dist.geometry.occupancy import lookup, surface_cells

    assert cfg.surface_point_count() == 1500
    at_surface = lookup(surface_cells(grid), in_object)
    assert at_surface[:1500][mask[:1500] > 0].all() and at_surface[1500:].mean() < 0.2
    # the source view's depth layers, in model units: "between the first and last surface" is the box (convex)
    from lrm_dist.model.lift import project_points

    fine = build_sample(rgba, c2w, intr, cfg, 112, np.random.default_rng(2), occupancy=grid)  # 56 px layers
    coords, depth = project_points(torch.from_numpy(points)[None], torch.from_numpy(fine["source_camera"])[None])
    layers = torch.from_numpy(np.concatenate([fine["source_first_depth"], fine["source_last_depth"],
                                              fine["source_layers_mask"]]))
    first, last, hit = torch.nn.functional.grid_sample(layers[None], coords[:, None], mode="nearest",
                                                       align_corners=False)[0, :, 0]
    between = ((hit > 0.5) & (depth[0] >= first - 0.03) & (depth[0] <= last + 0.03)).numpy()
    keep = mask[1500:] > 0  # the uniform points (after the surface ones)
    inside, guess = labels[1500:][keep] > 0.5, between[1500:][keep]
    assert (inside & guess).sum() / (inside | guess).sum() > 0.85
    none = build_sample(rgba, c2w, intr, cfg, 28, np.random.default_rng(2))
    assert none["occupancy_points"].shape == (3000, 3) and not none["occupancy_mask"].any()
    assert not none["source_layers_mask"].any()
    off = build_sample(rgba, c2w, intr, cfg.model_copy(update={"source_layers": False}), 28, np.random.default_rng(2),
                       occupancy=grid)
    assert not off["source_layers_mask"].any() and off["occupancy_mask"].any()


def test_depth_is_cropped_like_the_image_and_masked(small_recipe):
    rgba, c2w, intr = _views(3)
    depth = np.zeros((3, 40, 40), np.float32)
    depth[:, :, 20:] = 2.5  # the opaque right half, as in _views
    s = build_sample(rgba, c2w, intr, small_recipe, 28, np.random.default_rng(3), depth=depth)
    d, m = s["render_depth"], s["render_depth_mask"]
    assert d.shape == m.shape == (3, 1, 16, 16)
    assert np.allclose(d[m > 0], 2.5, atol=1e-4) and (d[m == 0] == 0).all()
    assert (m <= s["render_alpha"] + 1e-6).all()  # depth only where the view is foreground
    scaled = build_sample(rgba, c2w, intr, small_recipe.model_copy(update={"source_distance": 1.25}), 28,
                          np.random.default_rng(3), depth=depth)
    assert np.allclose(scaled["render_depth"][scaled["render_depth_mask"] > 0], 2.5 * 1.25 / 2.5, atol=1e-4)


def test_camera_normals_and_their_resize():
    """World normals turn into each view's camera frame (R^T n); resizing keeps unit length on foreground only."""
    from lrm_dist.geometry.cameras import look_at_c2w
    from lrm_dist.train.sample import camera_normals, resize_normals

    c2w = np.stack([look_at_c2w(np.array([0.0, -3.0, 0.0])), look_at_c2w(np.array([3.0, 0.0, 0.0]))])
    world = np.zeros((2, 8, 8, 3), np.float32)
    world[:, 1:7, 1:7] = [0.0, -1.0, 0.0]  # a face turned to -y: towards the first camera, sideways to the second
    cam = camera_normals(world, c2w)
    assert torch.allclose(cam[0, :, 3, 3], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert torch.allclose(cam[1, :, 3, 3], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)
    assert cam[:, :, 0, 0].abs().sum() == 0
    small, mask = resize_normals(cam, 4)
    assert mask.shape == (2, 1, 4, 4) and mask[0, 0, 1:3, 1:3].all() and mask[0, 0, 0, 0] == 0
    assert torch.allclose(small.norm(dim=1)[mask[:, 0] > 0], torch.tensor(1.0), atol=1e-5)


def test_ray_points_lie_on_the_source_views_rays_through_its_silhouette(small_recipe):
    from lrm_dist.geometry.cameras import object_to_model_frame
    from lrm_dist.geometry.occupancy import lookup, occupancy_grid
    from lrm_dist.train.sample import source_ray_points

    rgba, c2w, intr = _views(2)  # the right half of each image is opaque
    rng = np.random.default_rng(3)
    points = source_ray_points(rgba[0, ..., 3], c2w[0], intr[0], 4000, rng)
    assert points.shape == (4000, 3) and np.abs(points).max() <= 1.0 + 1e-9  # inside the box
    local = (points - c2w[0][:3, 3]) @ c2w[0][:3, :3]  # back into the camera: each projects into the opaque half
    u = intr[0][2] + intr[0][0] * local[:, 0] / -local[:, 2]
    assert (local[:, 2] < 0).all() and u.min() >= 20 - 1e-6 and u.max() <= 40 + 1e-6
    depth = np.linalg.norm(points - c2w[0][:3, 3], axis=1)  # spread over the box, in front of and behind its centre
    assert depth.min() < 1.8 and depth.max() > 3.2
    assert source_ray_points(np.zeros((40, 40)), c2w[0], intr[0], 10, rng).shape == (0, 3)  # no silhouette
    # in a sample: surface points, then ray points, then uniform ones; ray and uniform points labelled by their cell
    import trimesh

    mesh = trimesh.creation.box(extents=(1.2, 0.8, 0.9))
    grid = occupancy_grid(mesh.vertices, mesh.faces, 32)
    cfg = small_recipe.model_copy(update={"occupancy_points": 1000, "occupancy_surface_fraction": 0.2,
                                          "occupancy_ray_fraction": 0.5})
    assert (cfg.surface_point_count(), cfg.ray_point_count(), cfg.uniform_point_start()) == (200, 500, 700)
    s = build_sample(rgba, c2w, intr, cfg, 28, np.random.default_rng(4), occupancy=grid)
    to_object = np.linalg.inv(object_to_model_frame(c2w, 0, cfg.source_distance, cfg.frame))
    in_object = s["occupancy_points"].astype(np.float64) @ to_object[:3, :3].T + to_object[:3, 3]
    np.testing.assert_array_equal(s["occupancy_labels"][200:] > 0.5, lookup(grid, in_object[200:]))
    on_rays = (in_object[200:700] - c2w[0][:3, 3]) @ c2w[0][:3, :3]
    assert (intr[0][2] + intr[0][0] * on_rays[:, 0] / -on_rays[:, 2]).min() >= 20 - 1e-6  # the silhouette's half
    with pytest.raises(ValueError, match="occupancy_ray_fraction"):
        SampleConfig.model_validate({**cfg.model_dump(), "occupancy_ray_fraction": 0.9})  # 0.2 + 0.9 > all


def test_normals_of_depth_crops_stand_in_for_normal_maps():
    """A tilted plane's depth gives its normal everywhere; a step between two planes is left out, as is the background."""
    from lrm_dist.train.sample import depth_map_normals

    intr = np.array([[20.0, 20.0, 8.0, 8.0, 16.0, 16.0]])
    n = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
    v, u = np.mgrid[0:16, 0:16] + 0.5
    ray = np.stack([(u - 8.0) / 20.0, -(v - 8.0) / 20.0, -np.ones_like(u)], -1)
    depth = (-2.0 / (ray @ n))[None, None].astype(np.float32)  # the plane n.x = -2, at planar depth d along d * ray
    mask = np.ones_like(depth)
    mask[..., :, 12:] = 0  # background on the right
    got, got_mask = depth_map_normals(depth, mask, intr)
    assert got.shape == (1, 3, 16, 16) and got_mask.shape == (1, 1, 16, 16)
    assert got_mask[0, 0, :15, :11].all() and not got_mask[0, 0, :, 11:].any() and not got_mask[0, 0, 15].any()
    assert np.allclose(got[0, :, :15, :11], n[:, None, None], atol=1e-4)
    assert (got[0][:, got_mask[0, 0] == 0] == 0).all()
    stepped = depth.copy()
    stepped[..., 8:, :] += 1.0  # the lower half a unit further away: the row across the step spans a grazing facet
    _, step_mask = depth_map_normals(stepped, np.ones_like(depth), intr)
    assert not step_mask[0, 0, 7].any() and step_mask[0, 0, 6, :15].all() and step_mask[0, 0, 8, :15].all()


@pytest.mark.parametrize("distance", [None, 1.5])
def test_the_warm_up_sample_holds_the_source_view_and_its_layers(small_recipe, distance):
    """The warm-up's sample: the source image on white, its camera, and depth layers of the box in model units (the
    camera 2.5 from the centre, moved to ``distance``: depths scale by distance / 2.5)."""
    import trimesh

    from lrm_dist.geometry.occupancy import occupancy_grid
    from lrm_dist.train.sample import build_layers_sample

    mesh = trimesh.creation.box(extents=(0.8, 0.8, 0.8))
    grid = occupancy_grid(mesh.vertices, mesh.faces, 32)
    rgba, c2w, intr = _views(3)
    recipe = small_recipe.model_copy(update={"source_layers": True, "source_distance": distance})
    slim = build_layers_sample(rgba[0], c2w[0], intr[0], recipe, 28, grid)
    assert set(slim) == {"source_image", "source_camera", "source_extent", "source_first_depth", "source_last_depth",
                         "source_layers_mask"}
    assert slim["source_image"].shape == (3, 28, 28) and slim["source_layers_mask"].shape == (1, 14, 14)
    assert np.allclose(slim["source_image"][:, :, :10], 1.0)  # the transparent left half composited on white
    hit = slim["source_layers_mask"][0] > 0
    assert 0.1 < hit.mean() < 0.9  # the box covers part of the view
    first, last = slim["source_first_depth"][0][hit], slim["source_last_depth"][0][hit]
    s = (distance or 2.5) / 2.5
    # a cube of half-side 0.4 seen from 2.5 away: its surfaces lie between 2.5 - 0.4 * sqrt(3) and 2.5 + 0.4 * sqrt(3)
    assert (first >= (2.5 - 0.7) * s).all() and (last <= (2.5 + 0.7) * s).all() and (last >= first).all()
    assert np.median(last - first) > 0.5 * s  # the rays cross the cube: about 0.8 deep, not a shell
    full = build_sample(rgba, c2w, intr, recipe.model_copy(update={"occupancy_points": 64}), 28,
                        np.random.default_rng(0), occupancy=grid)
    for key, value in slim.items():  # the full sample's source part is this one
        np.testing.assert_array_equal(value, full[key], err_msg=key)
    with pytest.raises(ValueError, match="rgba must be uint8"):
        build_layers_sample(rgba[0].astype(np.float32), c2w[0], intr[0], recipe, 28, grid)


def test_depth_layers_come_from_the_grid_with_or_without_occupancy_points(small_recipe):
    """The depth layers read the shard's occupancy grid whether or not occupancy points are drawn, in the full sample
    and in the warm-up's alike."""
    import trimesh

    from lrm_dist.geometry.occupancy import occupancy_grid
    from lrm_dist.shards.config import ShardsConfig
    from lrm_dist.shards.sample import encode_sample
    from lrm_dist.train.synthetic import synthetic_asset

    asset = synthetic_asset("proc-chair-x", n_views=4, res=32, seed=0)
    box = trimesh.creation.box(extents=(0.8, 0.8, 0.8))
    asset["occupancy"] = occupancy_grid(box.vertices, box.faces, 32)
    raw = {k.split(".", 1)[1]: v for k, v in encode_sample(asset, ShardsConfig()).items()}
    recipe = small_recipe.model_copy(update={"source_layers": True, "occupancy_points": 0})
    full = sample_from_raw(raw, recipe, 28, np.random.default_rng(4))
    slim = sample_from_raw(raw, recipe, 28, np.random.default_rng(4), layers_only=True)
    assert full["source_layers_mask"].any() and full["occupancy_points"].shape == (0, 3)
    for key in ("source_first_depth", "source_last_depth", "source_layers_mask", "source_image"):
        np.testing.assert_array_equal(full[key], slim[key], err_msg=key)
