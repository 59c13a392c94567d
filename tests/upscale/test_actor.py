"""The Ray stage callable: direct use, Ray Data batches (ragged too), and a real local Ray Data pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from lrm_dist.upscale.actor import Upscaler
from lrm_dist.upscale.config import UpscaleConfig


def test_upscaler_callable_on_numpy_batches(small_srvgg_file):
    up = Upscaler(UpscaleConfig(model=str(small_srvgg_file), device="cpu").model_dump())
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 6, 4), dtype=np.uint8)
    out = up({"image": images, "asset_id": np.array(["a", "b", "c"])})
    assert out["image"].shape == (3, 32, 24, 4) and list(out["asset_id"]) == ["a", "b", "c"]
    np.testing.assert_array_equal(out["image"][1], up.upscale_images([images[1]])[0])
    ragged = np.empty(2, dtype=object)
    ragged[:] = [images[0], images[1, :4]]
    out = up({"image": ragged})
    assert [im.shape for im in out["image"]] == [(32, 24, 4), (16, 24, 4)]
    stats = up.stats()
    assert stats["images"] == 6 and stats["input_mp"] == pytest.approx((5 * 48 + 24) / 1e6)
    with pytest.raises(KeyError, match="no column 'image'"):
        up({"rgba": images})


@pytest.mark.integration
def test_ray_data_pipeline_upscales(small_srvgg_file):
    import ray

    from lrm_dist.ray_utils import RayConfig, init_ray
    from lrm_dist.upscale.actor import upscale_dataset

    init_ray(RayConfig(num_cpus=2))
    try:
        rng = np.random.default_rng(1)
        rows = [{"asset_id": f"a{i}", "image": rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)} for i in range(5)]
        cfg = UpscaleConfig(model=str(small_srvgg_file), batch_size=2, actors={"count": 1, "num_gpus": 0.5})
        out = sorted(upscale_dataset(ray.data.from_items(rows), cfg).take_all(), key=lambda r: r["asset_id"])
        direct = Upscaler(cfg.model_copy(update={"device": "cpu"}))
        assert [r["asset_id"] for r in out] == [f"a{i}" for i in range(5)]
        for row, src in zip(out, rows):
            np.testing.assert_array_equal(row["image"], direct.upscale_images([src["image"]])[0])
    finally:
        ray.shutdown()
