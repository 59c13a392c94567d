"""The Ray worker setup hook: silences only known-harmless noise and never starts a Ray itself."""

import sys
import warnings

import pytest


def test_quiet_ray_internals_filters_torch_deprecations_only_and_starts_no_ray():
    import ray

    from lrm_dist.log import quiet_ray_internals

    assert not ray.is_initialized()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        quiet_ray_internals()
        warnings.warn("`torch.distributed.all_gather_into_tensor` is deprecated. Please use ...", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]
    assert not ray.is_initialized()


def test_quiet_prints_holds_back_library_output_unless_verbose(capfd, monkeypatch):
    from lrm_dist.log import quiet_prints

    monkeypatch.setenv("LRM_DIST_VERBOSE", "0")
    with quiet_prints():
        print("DeepSpeed op built successfully")
        print("Loading checkpoint shards", file=sys.stderr)
    with pytest.raises(ValueError, match="still raised"), quiet_prints():
        raise ValueError("still raised")
    assert capfd.readouterr() == ("", "")
    monkeypatch.setenv("LRM_DIST_VERBOSE", "1")
    with quiet_prints():
        print("kept when verbose")
    assert capfd.readouterr().out == "kept when verbose\n"
